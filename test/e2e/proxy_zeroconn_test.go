package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS: on the stop signal the proxy
// drains for the minimum drain duration, then stops as soon as no
// downstream connection is left (here: when a slow request finishes),
// not after the whole drain duration; idle keep-alive connections do not
// hold it.
func TestProxyExitOnZeroActiveConnections(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "v1 ", r.URL.Path)
	}))
	defer slow.Close()
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.Set(proxyHTTPConfig("v1", map[string][]string{"v1": {strings.TrimPrefix(slow.URL, "http://")}, "v2": {proxyHTTPBackend(t, "v2")}}, 0)); err != nil {
		t.Fatal(err)
	}
	const drain, minDrain = 30 * time.Second, 300 * time.Millisecond
	cfg := &bootstrap.Config{XDS: srv.Addr(), Meta: node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "zeroconn", Namespace: "default"},
		DrainDuration: drain, ExitOnZeroActive: true, MinDrainDuration: minDrain, PeekTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, _ := startReadyProxy(t, ctx, cfg)
	defer p.StopNow()
	addr, _ := p.Runtime.Listeners().Addr("http")
	base := "http://" + addr.String()
	// An idle keep-alive connection, and a request in flight.
	idle := &http.Client{Transport: &http.Transport{}}
	if resp, err := idle.Get(base + "/fast"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("fast request: %v %v", err, resp)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	slowDone := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		slowDone <- err
	}()
	meshtest.WaitFor(t, "the slow request reaches the backend", func() bool {
		var n int64
		for _, s := range p.Runtime.Listeners().Stats() {
			n += s.DownstreamCxActive
		}
		return n >= 2
	})

	cancel() // the stop signal
	// Held well past the minimum drain by the request in flight.
	select {
	case <-p.Done():
		t.Fatal("stopped with a request in flight")
	case <-time.After(minDrain + 1500*time.Millisecond):
	}
	finished := time.Now()
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("the request in flight during the drain: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(drain / 3):
		t.Fatalf("still running %v after the last connection could close (drain %v)", time.Since(finished), drain)
	}
	t.Logf("stopped %v after the last request finished", time.Since(finished).Round(time.Millisecond))
}
