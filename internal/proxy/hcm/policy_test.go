package hcm

import (
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
)

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func TestWeightedSplit(t *testing.T) {
	a, b := backend(t, echo("a")), backend(t, echo("b"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{a}}, {name: "b", addrs: []string{b}}},
		routes: rc(vhost(&routev3.Route{Name: "w", Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(20)},
				{Name: "b", Weight: wrapperspb.UInt32(80), ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-branch", Value: "b"}}}},
			}}}}}}))})
	c := client()
	const n = 1000
	count := map[string]int{}
	for i := 0; i < n; i++ {
		resp, body := get(t, c, "http://"+p.addr+"/")
		count[body]++
		if body == "b:" && resp.Header.Get("X-Branch") != "b" {
			t.Fatal("weighted cluster response header missing")
		}
	}
	// 20% of 1000: σ ≈ 12.6; allow 5σ.
	if math.Abs(float64(count["a:"])-200) > 63 || count["a:"]+count["b:"] != n {
		t.Fatalf("split %v", count)
	}
}

// flaky fails the first n requests with status, then answers 200; it
// records each attempt's x-envoy-attempt-count.
type flaky struct {
	mu       sync.Mutex
	n        int
	status   int
	attempts []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	f.attempts = append(f.attempts, r.Header.Get("X-Envoy-Attempt-Count"))
	fail := len(f.attempts) <= f.n
	f.mu.Unlock()
	if fail {
		w.WriteHeader(f.status)
		io.WriteString(w, "failed")
		return
	}
	io.WriteString(w, "ok")
}

func retryRoute(retryOn string, num uint32, perTry time.Duration) *routev3.RouteConfiguration {
	return rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
		a.RetryPolicy = &routev3.RetryPolicy{RetryOn: retryOn, NumRetries: wrapperspb.UInt32(num),
			RetriableStatusCodes: []uint32{418}}
		if perTry > 0 {
			a.RetryPolicy.PerTryTimeout = durationpb.New(perTry)
		}
	}))))
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		retryOn  string
		fails    int
		status   int
		num      uint32
		want     int
		attempts int
		flags    rflag.Flags
	}{
		{"5xx recovers", "5xx", 2, 503, 3, 200, 3, 0},
		{"5xx exhausted", "5xx", 5, 503, 2, 503, 3, rflag.URX},
		{"gateway-error ignores 500", "gateway-error", 1, 500, 3, 500, 1, 0},
		{"retriable-status-codes", "retriable-status-codes", 1, 418, 1, 200, 2, 0},
		{"no policy match", "connect-failure", 1, 503, 3, 503, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{n: tc.fails, status: tc.status}
			be := backend(t, f)
			p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
				routes: retryRoute(tc.retryOn, tc.num, 0), opts: Options{Sleep: noSleep}})
			req, _ := http.NewRequest("POST", "http://"+p.addr+"/", stringsReader("payload"))
			resp, err := client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			info := p.nextInfo(t)
			f.mu.Lock()
			defer f.mu.Unlock()
			if resp.StatusCode != tc.want || len(f.attempts) != tc.attempts || info.Flags != tc.flags || info.Attempts != tc.attempts {
				t.Fatalf("got %d after %v (flags %v, info attempts %d), want %d after %d (%v)",
					resp.StatusCode, f.attempts, info.Flags, info.Attempts, tc.want, tc.attempts, tc.flags)
			}
			for i, a := range f.attempts {
				if a != strconv.Itoa(i+1) {
					t.Errorf("attempt %d saw x-envoy-attempt-count %q", i+1, a)
				}
			}
		})
	}
}

func TestRetryConnectFailureMovesToAnotherHost(t *testing.T) {
	good := backend(t, echo("good"))
	dead := deadAddr(t)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{dead, good}}},
		routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(3),
				RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}
		})))), opts: Options{Sleep: noSleep}})
	c := client()
	for i := 0; i < 10; i++ {
		resp, body := get(t, c, "http://"+p.addr+"/")
		if resp.StatusCode != 200 || body != "good:" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

// slow answers after d, or when the client goes away.
func slow(d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			io.WriteString(w, "late")
		case <-r.Context().Done():
		}
	})
}

func TestTimeouts(t *testing.T) {
	be := backend(t, slow(5*time.Second))
	// Route timeout.
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) { a.Timeout = durationpb.New(50 * time.Millisecond) }))))})
	start := time.Now()
	resp, body := get(t, client(), "http://"+p.addr+"/")
	if resp.StatusCode != 504 || body != "upstream request timeout" || time.Since(start) > 3*time.Second {
		t.Fatalf("route timeout: %d %q after %v", resp.StatusCode, body, time.Since(start))
	}
	if info := p.nextInfo(t); info.Flags != rflag.UT {
		t.Errorf("flags %v", info.Flags)
	}
	// Per-try timeout with retries: every try times out.
	f := &countingHandler{h: slow(5 * time.Second)}
	be2 := backend(t, f)
	p2 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be2}}},
		routes: retryRoute("5xx", 2, 30*time.Millisecond), opts: Options{Sleep: noSleep}})
	resp, body = get(t, client(), "http://"+p2.addr+"/")
	if resp.StatusCode != 504 || body != "upstream request timeout" {
		t.Fatalf("per-try timeout: %d %q", resp.StatusCode, body)
	}
	if info := p2.nextInfo(t); info.Flags != rflag.UT|rflag.URX || f.n.Load() != 3 {
		t.Errorf("flags %v, backend saw %d", info.Flags, f.n.Load())
	}
}

type countingHandler struct {
	n atomic.Int64
	h http.Handler
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

func percent(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}
}

func TestFaults(t *testing.T) {
	be := backend(t, echo("a"))
	abort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: percent(100)}}
	delay := &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{
		FixedDelay: durationpb.New(100 * time.Millisecond)}, Percentage: percent(100)}}
	routes := rc(vhost(
		&routev3.Route{Name: "abort", Match: prefixMatch("/abort"), Action: toCluster("a"),
			TypedPerFilterConfig: map[string]*anypbAny{route.FaultFilter: mustAny(t, abort)}},
		&routev3.Route{Name: "delay", Match: prefixMatch("/delay"), Action: toCluster("a"),
			TypedPerFilterConfig: map[string]*anypbAny{route.FaultFilter: mustAny(t, delay)}},
		rt("plain", "/", toCluster("a")),
	))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes, fault: &faultv3.HTTPFault{}})
	c := client()
	resp, body := get(t, c, "http://"+p.addr+"/abort")
	if resp.StatusCode != 503 || body != "fault filter abort" || p.nextInfo(t).Flags != rflag.FI {
		t.Errorf("abort: %d %q", resp.StatusCode, body)
	}
	start := time.Now()
	resp, body = get(t, c, "http://"+p.addr+"/delay")
	if resp.StatusCode != 200 || body != "a:" || time.Since(start) < 100*time.Millisecond || p.nextInfo(t).Flags != rflag.DI {
		t.Errorf("delay: %d %q after %v", resp.StatusCode, body, time.Since(start))
	}
	resp, _ = get(t, c, "http://"+p.addr+"/plain")
	if resp.StatusCode != 200 || p.nextInfo(t).Flags != 0 {
		t.Errorf("plain: %d", resp.StatusCode)
	}

	// 50% abort: roughly half.
	half := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}, Percentage: percent(50)}}
	p2 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))), fault: half})
	aborted := 0
	for i := 0; i < 400; i++ {
		if resp, _ := get(t, c, "http://"+p2.addr+"/"); resp.StatusCode == 500 {
			aborted++
		}
	}
	if aborted < 140 || aborted > 260 { // σ = 10
		t.Errorf("50%% abort hit %d/400", aborted)
	}
}

func TestMirror(t *testing.T) {
	type seen struct{ host, body string }
	mirrored := make(chan seen, 10)
	shadow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mirrored <- seen{r.Host, string(b)}
		w.WriteHeader(500) // never reaches the client
	}))
	primary := backend(t, echo("primary"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{primary}}, {name: "m", addrs: []string{shadow}}},
		routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
			a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m",
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: percent(100)}}}
		}))))})
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/x", stringsReader("body"))
	req.Host = "reviews:9080"
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "primary:body" {
		t.Fatalf("client saw %d %q", resp.StatusCode, b)
	}
	select {
	case s := <-mirrored:
		if s.host != "reviews-shadow:9080" || s.body != "body" {
			t.Fatalf("mirror saw %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("mirror got nothing")
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	be := backend(t, slow(5*time.Second))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
		mutateHCM: func(h *hcmv3HCM) { h.StreamIdleTimeout = durationpb.New(50 * time.Millisecond) }})
	resp, body := get(t, client(), "http://"+p.addr+"/")
	if resp.StatusCode != 408 || body != "stream timeout" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if info := p.nextInfo(t); info.Flags != rflag.SI {
		t.Errorf("flags %v", info.Flags)
	}
}

func TestEnvoyRequestHeaderOverrides(t *testing.T) {
	be := backend(t, slow(5*time.Second))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	start := time.Now()
	resp, body := get(t, client(), "http://"+p.addr+"/", "x-envoy-upstream-rq-timeout-ms", "60")
	if resp.StatusCode != 504 || body != "upstream request timeout" || time.Since(start) > 3*time.Second {
		t.Fatalf("timeout header: %d %q", resp.StatusCode, body)
	}
	p.nextInfo(t)

	f := &flaky{n: 1, status: 503}
	be2 := backend(t, f)
	p2 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be2}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
		opts: Options{Sleep: noSleep}})
	resp, _ = get(t, client(), "http://"+p2.addr+"/", "x-envoy-retry-on", "5xx", "x-envoy-max-retries", "2")
	if resp.StatusCode != 200 || len(f.attempts) != 2 {
		t.Fatalf("retry headers: %d after %d attempts", resp.StatusCode, len(f.attempts))
	}

	// At the edge (use_remote_address) the headers are not trusted.
	p3 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
		a.Timeout = durationpb.New(300 * time.Millisecond)
	})))), mutateHCM: func(h *hcmv3HCM) { h.UseRemoteAddress = wrapperspb.Bool(true) }})
	start = time.Now()
	resp, _ = get(t, client(), "http://"+p3.addr+"/", "x-envoy-upstream-rq-timeout-ms", "10")
	if resp.StatusCode != 504 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("edge honoured the header: %d after %v", resp.StatusCode, time.Since(start))
	}
	// … and does not forward x-envoy-* control headers.
	be4 := backend(t, echo("a"))
	p4 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be4}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
		mutateHCM: func(h *hcmv3HCM) { h.UseRemoteAddress = wrapperspb.Bool(true) }})
	resp, _ = get(t, client(), "http://"+p4.addr+"/", "x-envoy-internal", "true", "x-added", "kept")
	if resp.Header.Get("X-Seen-X-Envoy-Internal") != "" || resp.Header.Get("X-Seen-X-Added") != "kept" {
		t.Fatalf("edge forwarded %v", resp.Header)
	}
}

func TestRetryOnUpstreamReset(t *testing.T) {
	var n atomic.Int64
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close() // reset before any response byte
			}
			return
		}
		io.WriteString(w, "second")
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "reset", NumRetries: wrapperspb.UInt32(1)}
		})))), opts: Options{Sleep: noSleep}})
	resp, body := get(t, client(), "http://"+p.addr+"/")
	if resp.StatusCode != 200 || body != "second" || n.Load() != 2 {
		t.Fatalf("got %d %q after %d upstream requests", resp.StatusCode, body, n.Load())
	}
	// Without a retry policy the reset is a 503 with flag UC.
	n.Store(0)
	p2 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	resp, body = get(t, client(), "http://"+p2.addr+"/")
	if resp.StatusCode != 503 || body != "upstream connect error or disconnect/reset before headers. reset reason: connection termination" {
		t.Fatalf("no retry: %d %q", resp.StatusCode, body)
	}
	if info := p2.nextInfo(t); info.Flags != rflag.UC {
		t.Errorf("flags %v", info.Flags)
	}
}

func TestDownstreamDisconnect(t *testing.T) {
	entered := make(chan struct{}, 1)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/", nil)
	go func() {
		<-entered // the request reached the backend: hang up
		cancel()
	}()
	if _, err := client().Do(req); err == nil {
		t.Fatal("request not cancelled")
	}
	if info := p.nextInfo(t); info.Flags != rflag.DC || info.Status != 0 {
		t.Errorf("info flags %v status %d", info.Flags, info.Status)
	}
}

func TestMirrorPercentage(t *testing.T) {
	var mirrored atomic.Int64
	shadow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mirrored.Add(1) }))
	primary := backend(t, echo("p"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{primary}}, {name: "m", addrs: []string{shadow}}},
		routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
			a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m",
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: percent(50)}}}
		}))))})
	c := client()
	for i := 0; i < 400; i++ {
		get(t, c, "http://"+p.addr+"/")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && mirrored.Load() < 140 {
		time.Sleep(10 * time.Millisecond)
	}
	if got := mirrored.Load(); got < 140 || got > 260 { // σ = 10
		t.Fatalf("50%% mirror sent %d/400", got)
	}
}

func TestConsistentHashByHeader(t *testing.T) {
	var addrs []string
	for _, n := range []string{"h1", "h2", "h3"} {
		addrs = append(addrs, backend(t, echo(n)))
	}
	p := startProxy(t, proxyConfig{routes: rc(vhost(rt("r", "/", toCluster("a", func(a *routev3.RouteAction) {
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
	})))), clusters: []upstream{{name: "a", addrs: addrs, mutate: func(c *clusterv3Cluster) { c.LbPolicy = clusterv3RingHash }}}})
	c := client()
	users := map[string]string{}
	hosts := map[string]bool{}
	for round := 0; round < 3; round++ {
		for u := 0; u < 30; u++ {
			user := strconv.Itoa(u)
			_, body := get(t, c, "http://"+p.addr+"/", "x-user", user)
			if prev, ok := users[user]; ok && prev != body {
				t.Fatalf("user %s moved from %s to %s", user, prev, body)
			}
			users[user] = body
			hosts[body] = true
		}
	}
	if len(hosts) < 2 {
		t.Errorf("30 users all hashed to %v", hosts)
	}
}

func TestRequestTimeout(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
		mutateHCM: func(h *hcmv3HCM) { h.RequestTimeout = durationpb.New(100 * time.Millisecond) }})
	// A body that never finishes.
	r := rawRequest(t, p.addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
	if r.StatusCode != 408 {
		t.Fatalf("got %d", r.StatusCode)
	}
	if info := p.nextInfo(t); info.Details != "request_overall_timeout" {
		t.Errorf("details %q", info.Details)
	}
	// A complete request is unaffected however long the upstream takes.
	resp, body := get(t, client(), "http://"+p.addr+"/")
	if resp.StatusCode != 200 || body != "a:" {
		t.Fatalf("complete request: %d %q", resp.StatusCode, body)
	}
}
