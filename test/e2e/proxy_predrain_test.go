package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// The injected native sidecar's preStop runs `weft-proxy request POST
// drain_listeners?inboundonly&graceful` when the pod starts terminating,
// as Istio's runs `pilot-agent request POST drain`: inbound connections
// are told to close (Connection: close) while inbound listeners keep
// serving, outbound ones are untouched (the app may still call out while
// it stops), readiness fails and the control plane is told. The stop
// signal, which the kubelet sends a native sidecar only after the app
// has exited, then stops the proxy without a second drain period.
func TestProxyInboundDrainBeforeStop(t *testing.T) {
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	res := proxyHTTPConfig("v1", map[string][]string{"v1": {proxyHTTPBackend(t, "v1")}, "v2": {proxyHTTPBackend(t, "v2")}}, 0)
	in := meshtest.Listener("in", "127.0.0.1:0", meshtest.HCMFilter("80"))
	in.TrafficDirection = corev3.TrafficDirection_INBOUND
	res.Listeners = append(res.Listeners, types.Resource(in))
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	const drain = 20 * time.Second // far longer than the stop may take
	cfg := &bootstrap.Config{XDS: srv.Addr(), Meta: node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "predrain", Namespace: "default"},
		DrainDuration: drain, PeekTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, health := startReadyProxy(t, ctx, cfg)
	defer p.Wait()
	url := func(name string) string {
		a, ok := p.Runtime.Listeners().Addr(name)
		if !ok {
			t.Fatalf("no listener %q", name)
		}
		return "http://" + a.String() + "/"
	}
	inURL, outURL := url("in"), url("http")
	get := func(c *http.Client, u string) *http.Response {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d", u, resp.StatusCode)
		}
		return resp
	}
	keepIn, keepOut := &http.Client{Transport: &http.Transport{}}, &http.Client{Transport: &http.Transport{}}
	if get(keepIn, inURL).Close || get(keepOut, outURL).Close {
		t.Fatal("Connection: close before any drain")
	}

	// POST only, as Envoy's admin.
	if resp, err := http.Get("http://" + p.Addr("admin") + "/drain_listeners?inboundonly&graceful"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET drain_listeners: %v %v", err, resp)
	}
	resp, err := http.Post("http://"+p.Addr("admin")+"/drain_listeners?inboundonly&graceful", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST drain_listeners: %v %v", err, resp)
	}
	resp.Body.Close()
	// The kept-alive inbound connection is told to close; new inbound
	// connections are still served, each told to close; outbound as before.
	if !get(keepIn, inURL).Close {
		t.Error("inbound response on a kept-alive connection without Connection: close after the drain began")
	}
	for i := range 3 {
		if !get(&http.Client{Transport: &http.Transport{}}, inURL).Close {
			t.Errorf("new inbound connection %d: no Connection: close", i)
		}
		if get(keepOut, outURL).Close {
			t.Errorf("outbound response %d: Connection: close (outbound must not drain)", i)
		}
	}
	if code, _ := proxyGet(t, health); code != http.StatusServiceUnavailable {
		t.Errorf("readiness %d while draining, want 503", code)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if _, _, err := srv.WaitRequest(wctx, 0, func(r meshtest.XDSRequest) bool {
		return r.Node != nil && r.Node.GetMetadata().GetFields()["WEFT_LIFECYCLE"].GetStringValue() == string(node.LifecycleDraining)
	}); err != nil {
		t.Fatalf("control plane never told draining: %v", err)
	}

	stopped := time.Now()
	cancel() // SIGTERM: the app has exited
	select {
	case <-p.Done():
	case <-time.After(drain / 2):
		t.Fatalf("still running %v after the stop signal: drained again instead of stopping", time.Since(stopped))
	}
	t.Logf("stopped %v after the signal", time.Since(stopped).Round(time.Millisecond))
}

// startReadyProxy starts a proxy in this process (its log on stderr with
// WEFT_TEST_LOG set) and waits until it is ready; cancelling ctx is the
// stop signal. It returns the proxy and its readiness URL.
func startReadyProxy(t *testing.T, ctx context.Context, cfg *bootstrap.Config) (*bootstrap.Proxy, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("WEFT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := bootstrap.Start(ctx, cfg, log, new(slog.LevelVar))
	if err != nil {
		t.Fatal(err)
	}
	health := "http://" + p.Addr("health") + "/healthz/ready"
	meshtest.WaitFor(t, "ready", func() bool { code, _ := proxyGet(t, health); return code == http.StatusOK })
	return p, health
}
