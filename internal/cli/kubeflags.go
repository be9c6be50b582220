package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/store"
)

// kubeFlags select Kubernetes mode for the control plane.
type kubeFlags struct {
	kubeconfig string
	context    string
	systemNS   string
	identity   string
	lease      time.Duration
	webhook    webhookFlags
}

func (k *kubeFlags) register(f *pflag.FlagSet) {
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "watch this cluster's API server instead of a config dir (in a pod without --config-dir: the in-cluster config)")
	f.StringVar(&k.context, "context", "", "kubeconfig context (default: the current one)")
	f.StringVar(&k.systemNS, "system-namespace", kube.DefaultSystemNamespace, "namespace of the control plane, its istio MeshConfig ConfigMap, CA Secret and leader Lease")
	f.StringVar(&k.identity, "replica-id", "", "this replica's name in leader election (default $POD_NAME, else the host name)")
	k.webhook.register(f)
	f.DurationVar(&k.lease, "leader-lease", 15*time.Second, "leader election lease: how long a dead leader holds the once-only work")
}

// restConfig is the client config: --kubeconfig, else the in-cluster one
// when running in a pod and no config dir was given; nil means standalone.
func (k *kubeFlags) restConfig(configDir string) (*rest.Config, error) {
	if k.kubeconfig != "" {
		if configDir != "" {
			return nil, fmt.Errorf("--kubeconfig and --config-dir are exclusive: config comes from one source")
		}
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: k.kubeconfig}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return cfg, nil
	}
	if configDir == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	return nil, nil
}

// kubeMode is the Kubernetes side of a control plane.
type kubeMode struct {
	cfg     *rest.Config
	client  kubernetes.Interface
	ns, id  string
	lease   time.Duration
	caDir   string // plug-in files written from the CA Secret; removed by close
	log     *slog.Logger
	src     *kube.Source // set by the server's NewSource
	webhook webhookFlags
}

// setup configures opts for Kubernetes mode: config and registry from the
// API server, the CA root from its Secret, service-account tokens checked
// by TokenReview. It returns nil in standalone mode.
func (k *kubeFlags) setup(ctx context.Context, opts *server.Options) (*kubeMode, error) {
	cfg, err := k.restConfig(opts.ConfigDir)
	if err != nil || cfg == nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if k.lease < 2*time.Second {
		return nil, fmt.Errorf("--leader-lease must be at least 2s")
	}
	m := &kubeMode{cfg: cfg, client: client, ns: k.systemNS, id: k.identity, lease: k.lease, webhook: k.webhook, log: opts.Logger.With("component", "kube")}
	if m.id == "" {
		m.id = os.Getenv("POD_NAME")
	}
	if m.id == "" {
		m.id, _ = os.Hostname()
	}
	opts.NewSource = func(onChange func()) (store.Source, error) {
		src, err := kube.New(ctx, kube.Options{Config: cfg, SystemNamespace: m.ns, Logger: m.log, OnChange: onChange})
		m.src = src
		return src, err
	}
	opts.NewAuthenticators = func(td func() string) []ca.Authenticator {
		return []ca.Authenticator{&kube.TokenReviewer{Client: client, TrustDomain: td}}
	}
	if opts.CA.PluginDir == "" {
		dir, err := os.MkdirTemp("", "weft-ca-")
		if err != nil {
			return nil, err
		}
		if _, err := kube.CAFiles(ctx, client, m.ns, "cluster.local", dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		m.caDir, opts.CA.PluginDir = dir, dir
	}
	return m, nil
}

// run does the once-only work under leader election until ctx ends:
// publishing the trust bundle to every namespace and writing status.
func (m *kubeMode) run(ctx context.Context, srv *server.Server) {
	dyn, err := dynamic.NewForConfig(m.cfg)
	if err != nil {
		m.log.Error("status writer", "err", err)
		return
	}
	changed := make(chan struct{}, 1)
	srv.CA().OnChange(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	bundleChanged := make(chan struct{}, 1)
	srv.CA().OnChange(func() {
		select {
		case bundleChanged <- struct{}{}:
		default:
		}
	})
	go func() {
		if err := m.serveWebhook(ctx, srv); err != nil {
			m.log.Error("injection webhook", "err", err)
		}
	}()
	kube.RunElected(ctx, kube.Election{Client: m.client, Namespace: m.ns, Identity: m.id, Logger: m.log,
		LeaseDuration: m.lease, RenewDeadline: m.lease * 2 / 3, RetryPeriod: m.lease / 7}, func(lctx context.Context) {
		done := make(chan struct{})
		go func() { kube.WriteStatus(lctx, m.src, dyn, m.log); close(done) }()
		if m.webhook.addr != "" {
			go m.keepCABundle(lctx, srv, bundleChanged)
		}
		kube.PublishRoot(lctx, m.client, srv.CA().TrustBundle, changed, m.log)
		<-done
	})
}

func (m *kubeMode) close() {
	if m.caDir != "" {
		os.RemoveAll(m.caDir)
	}
}
