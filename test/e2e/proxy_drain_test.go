package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// SIGTERM drains as Envoy under pilot-agent does (issue 18 item 6; before:
// the proxy logged "draining duration=5s" and its listeners closed 1 ms
// later): readiness fails, the control plane is told on the proxy's own
// stream (lifecycle "draining", after "ready" once configured), and the
// listeners keep accepting and serving with Connection: close for the
// drain duration; then the proxy stops.
func TestProxyGracefulDrain(t *testing.T) {
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.Set(proxyHTTPConfig("v1", map[string][]string{"v1": {proxyHTTPBackend(t, "v1")}, "v2": {proxyHTTPBackend(t, "v2")}}, 0)); err != nil {
		t.Fatal(err)
	}
	const drain = 2 * time.Second
	cfg := &bootstrap.Config{XDS: srv.Addr(), Meta: node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "drain", Namespace: "default"},
		DrainDuration: drain, PeekTimeout: time.Second}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("WEFT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := bootstrap.Start(ctx, cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	lifecycle := func(want node.Lifecycle) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		if _, _, err := srv.WaitRequest(wctx, 0, func(r meshtest.XDSRequest) bool {
			return r.Node != nil && r.Node.GetMetadata().GetFields()["WEFT_LIFECYCLE"].GetStringValue() == string(want)
		}); err != nil {
			t.Fatalf("control plane never told %q: %v", want, err)
		}
	}
	lifecycle(node.LifecycleStarting)
	health := "http://" + p.Addr("health") + "/healthz/ready"
	meshtest.WaitFor(t, "ready", func() bool { code, _ := proxyGet(t, health); return code == http.StatusOK })
	lifecycle(node.LifecycleReady)
	addr, ok := p.Runtime.Listeners().Addr("http")
	if !ok {
		t.Fatal("no http listener")
	}
	url := "http://" + addr.String() + "/"
	get := func(c *http.Client) (*http.Response, error) {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	keep := &http.Client{Transport: &http.Transport{}}
	if resp, err := get(keep); err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before the drain: %v %+v", err, resp)
	}

	stopped := time.Now()
	cancel() // what SIGTERM does in weft-proxy
	meshtest.WaitFor(t, "readiness failing", func() bool { code, _ := proxyGet(t, health); return code == http.StatusServiceUnavailable })
	lifecycle(node.LifecycleDraining)
	// New connections are still accepted and served, each told to close.
	served := 0
	for time.Since(stopped) < drain/2 {
		fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: false}}
		resp, err := get(fresh)
		if err != nil {
			t.Fatalf("request %d during the drain (%v after the signal): %v", served, time.Since(stopped), err)
		}
		if resp.StatusCode != 200 || !resp.Close {
			t.Fatalf("during the drain: status %d, Connection: close %t", resp.StatusCode, resp.Close)
		}
		served++
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-p.Done():
		t.Fatalf("stopped %v after the signal, before the %v drain", time.Since(stopped), drain)
	default:
	}
	select {
	case <-p.Done():
	case <-time.After(drain + 10*time.Second):
		t.Fatal("proxy did not stop after the drain")
	}
	t.Logf("served %d requests on new connections during the drain; stopped %v after the signal", served, time.Since(stopped))
}
