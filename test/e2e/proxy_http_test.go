package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
)

func proxyHTTPBackend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// httpConfig: listener "http" (HCM, RDS "80") → route to cluster → EDS
// endpoints. gen varies the listener's stat_prefix so the listener (and its
// connection manager) is recompiled on every push.
func proxyHTTPConfig(routeTo string, endpoints map[string][]string, gen int) meshtest.Resources {
	hcm := meshtest.HCMFilter("80")
	l := meshtest.Listener("http", "127.0.0.1:0", hcm)
	l.StatPrefix = fmt.Sprintf("gen%d", gen)
	r := meshtest.Resources{
		Listeners: []types.Resource{l},
		Routes:    []types.Resource{meshtest.RouteConfig("80", routeTo)},
	}
	for _, name := range []string{"v1", "v2"} {
		r.Clusters = append(r.Clusters, meshtest.EDSCluster(name))
		r.Endpoints = append(r.Endpoints, meshtest.Endpoints(name, endpoints[name]...))
	}
	return r
}

func TestProxyHTTPEndToEnd(t *testing.T) {
	t.Run("delta", func(t *testing.T) { testProxyHTTP(t, false) })
	// A control plane without delta xDS: the proxy falls back to SotW.
	t.Run("sotw", func(t *testing.T) { testProxyHTTP(t, true) })
}

func testProxyHTTP(t *testing.T, noDelta bool) {
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{NoDelta: noDelta})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	eps := map[string][]string{"v1": {proxyHTTPBackend(t, "v1a"), proxyHTTPBackend(t, "v1b")}, "v2": {proxyHTTPBackend(t, "v2a")}}
	if err := srv.Set(proxyHTTPConfig("v1", eps, 0)); err != nil {
		t.Fatal(err)
	}
	p := proxyStart(t, srv)
	select {
	case <-p.XDS.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	addr, ok := p.Runtime.Listeners().Addr("http")
	if !ok {
		t.Fatal("http listener not bound")
	}
	url := "http://" + addr.String() + "/productpage"
	code, body := proxyGet(t, url)
	if code != 200 || !strings.HasPrefix(body, "v1") || !strings.HasSuffix(body, "GET /productpage") {
		t.Fatalf("got %d %q", code, body)
	}
	// Route switch via RDS applies to the next request.
	if err := srv.Set(proxyHTTPConfig("v2", eps, 0)); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "route to v2", func() bool { _, b := proxyGet(t, url); return strings.HasPrefix(b, "v2") })
	if st := p.XDS.Status(); st.Delta == noDelta {
		t.Fatalf("delta=%v with a server that has delta=%v", st.Delta, !noDelta)
	}
}

// TestProxyConfigUpdateUnderLoad: keep-alive clients hammer the proxy while
// the control plane pushes route, endpoint and listener changes; not one
// request may fail.
func TestProxyConfigUpdateUnderLoad(t *testing.T) {
	dur := 30 * time.Second
	if testing.Short() {
		dur = 10 * time.Second
	}
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	v1 := []string{proxyHTTPBackend(t, "v1a"), proxyHTTPBackend(t, "v1b"), proxyHTTPBackend(t, "v1c")}
	v2 := []string{proxyHTTPBackend(t, "v2a"), proxyHTTPBackend(t, "v2b")}
	all := map[string][]string{"v1": v1, "v2": v2}
	if err := srv.Set(proxyHTTPConfig("v1", all, 0)); err != nil {
		t.Fatal(err)
	}
	p := proxyStart(t, srv)
	select {
	case <-p.XDS.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	addr, _ := p.Runtime.Listeners().Addr("http")
	url := "http://" + addr.String() + "/load"

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasSuffix(string(b), "GET /load") {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s flags=%s", resp.StatusCode, b, resp.Header.Get("x-weft-flags")))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	pushes := 0
	deadline := time.Now().Add(dur)
	for time.Now().Before(deadline) {
		pushes++
		// Vary the route target, the endpoint sets (never empty) and the listener.
		eps := map[string][]string{"v1": v1[:1+pushes%3], "v2": v2[pushes%2:]}
		to := []string{"v1", "v2"}[pushes%2]
		if err := srv.Set(proxyHTTPConfig(to, eps, pushes)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // pacing between pushes, not a wait for a condition
	}
	close(stop)
	wg.Wait()
	for _, r := range srv.Requests() {
		if r.NACK() {
			t.Fatalf("proxy NACKed a valid config: %s", r.ErrorDetail)
		}
	}
	t.Logf("%d requests, %d failed, %d config pushes", ok.Load()+failed.Load(), failed.Load(), pushes)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed during config updates; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests completed", ok.Load())
	}
}
