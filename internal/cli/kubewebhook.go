package cli

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/install"
)

// webhookFlags configure the sidecar injection webhook (Kubernetes mode).
type webhookFlags struct {
	addr, hub, tag, revision string
}

func (w *webhookFlags) register(f *pflag.FlagSet) {
	f.StringVar(&w.addr, "webhook-address", "", "serve the sidecar injection webhook (TLS, POST /inject) here, e.g. :15017; off when empty")
	d := install.DefaultValues()
	f.StringVar(&w.hub, "proxy-hub", d.Hub, "injected sidecars run <proxy-hub>/weft-proxy:<proxy-tag>")
	f.StringVar(&w.tag, "proxy-tag", d.Tag, "tag of the injected weft-proxy image")
	f.StringVar(&w.revision, "revision", "", "control plane revision: the injector answers for istio.io/rev=<revision> and keeps istio-sidecar-injector[-<revision>]'s caBundle")
}

// values are the installation values the injector follows, so the webhook
// injects what `weft kube-inject --set ...` would.
func (m *kubeMode) injectValues() install.Values {
	v := install.DefaultValues()
	v.Namespace, v.Hub, v.Tag, v.Revision = m.ns, m.webhook.hub, m.webhook.tag, m.webhook.revision
	return v
}

// serveWebhook runs the injection webhook on every replica until ctx ends;
// its certificate comes from the mesh CA, for the control plane Service's
// names.
func (m *kubeMode) serveWebhook(ctx context.Context, srv *server.Server) error {
	if m.webhook.addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.webhook.addr)
	if err != nil {
		return fmt.Errorf("--webhook-address: %w", err)
	}
	v := m.injectValues()
	svc := install.ControlPlane
	if v.Revision != "" {
		svc += "-" + v.Revision
	}
	hosts := []string{svc + "." + v.Namespace + ".svc", svc + "." + v.Namespace + ".svc.cluster.local", "localhost", "127.0.0.1"}
	// The istio-sidecar-injector ConfigMap (policy, selectors, image
	// values) applies over the flags, and edits apply as they come.
	live := inject.NewLiveConfig(v.InjectConfig(), m.log)
	cm := inject.ConfigMapName(v.Revision)
	if !live.Watch(ctx, m.client, v.Namespace, cm, 15*time.Second) {
		m.log.Warn("injector configmap not read yet; injecting with the flags' config until it is", "configmap", v.Namespace+"/"+cm)
	}
	m.log.Info("injection webhook", "address", ln.Addr().String())
	return inject.Serve(ctx, ln, &inject.Webhook{Live: live, Log: m.log},
		inject.ServingConfig(srv.CA(), hosts, 24*time.Hour, nil))
}

// keepCABundle (leader only) sets the webhook configuration's caBundle to
// the CA's trust bundle now and whenever it changes, and re-checks it
// periodically in case someone re-applied the manifest without it.
func (m *kubeMode) keepCABundle(ctx context.Context, srv *server.Server, changed <-chan struct{}) {
	name := inject.WebhookName(m.webhook.revision)
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		if err := inject.PatchCABundle(ctx, m.client, name, srv.CA().TrustBundle()); err != nil && ctx.Err() == nil {
			m.log.Error("webhook caBundle", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}
