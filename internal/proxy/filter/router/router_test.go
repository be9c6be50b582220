package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// fakeUpstream answers from a script of results, one per attempt.
type fakeUpstream struct {
	mu      sync.Mutex
	results []func(*http.Request) (*http.Response, error)
	bodies  []string
	opts    []filter.Attempt
}

func (f *fakeUpstream) RoundTrip(r *http.Request, o *filter.Attempt) (*http.Response, string, error) {
	f.mu.Lock()
	i := len(f.bodies)
	b, _ := io.ReadAll(r.Body)
	f.bodies = append(f.bodies, string(b))
	cp := *o
	cp.Exclude = append([]string(nil), o.Exclude...)
	f.opts = append(f.opts, cp)
	res := f.results[min(i, len(f.results)-1)]
	f.mu.Unlock()
	resp, err := res(r)
	return resp, "10.0.0." + string(rune('1'+i)) + ":80", err
}

func (f *fakeUpstream) Dial(context.Context, *filter.Attempt) (net.Conn, string, error) {
	return nil, "", &rflag.Error{Flag: rflag.UF, Status: 503}
}

type fakeEnv map[string]filter.Upstream

func (e fakeEnv) Upstream(n string) filter.Upstream { return e[n] }

func status(code int, body string) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body))}, nil
	}
}

func fail(flag rflag.Flags) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) {
		return nil, &rflag.Error{Flag: flag, Status: 503, Details: "x"}
	}
}

func table(t *testing.T, a *routev3.RouteAction) *route.Table {
	t.Helper()
	tb, err := route.Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
		Routes: []*routev3.Route{{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: a}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func serve(t *testing.T, tb *route.Table, up filter.Upstream, body string) (*httptest.ResponseRecorder, error, *filter.Info) {
	t.Helper()
	rt, err := New(nil, Options{Sleep: func(ctx context.Context, d time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
	w := httptest.NewRecorder()
	s := &filter.Stream{W: w, Req: r, Info: &filter.Info{}, Env: fakeEnv{"c": up}, Table: tb}
	s.VHost, s.Route = tb.Match(r)
	err = s.Start([]filter.Filter{rt})
	return w, err, s.Info
}

func retryAction(on string, n uint32) *routev3.RouteAction {
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, Timeout: durationpb.New(0),
		RetryPolicy: &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(n),
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}}
}

func TestRetryResendsBodyAndExcludesHosts(t *testing.T) {
	up := &fakeUpstream{results: []func(*http.Request) (*http.Response, error){fail(rflag.UF), status(503, "busy"), status(200, "ok")}}
	w, err, info := serve(t, table(t, retryAction("5xx", 3)), up, "payload")
	if err != nil || w.Code != 200 || w.Body.String() != "ok" || info.Attempts != 3 {
		t.Fatalf("got %d %q %v attempts %d", w.Code, w.Body, err, info.Attempts)
	}
	for i, b := range up.bodies {
		if b != "payload" {
			t.Errorf("attempt %d body %q", i, b)
		}
	}
	if len(up.opts[2].Exclude) != 2 || !up.opts[1].Retry || up.opts[0].Retry {
		t.Errorf("attempt options %+v", up.opts)
	}
}

func TestLargeBodyIsNotRetried(t *testing.T) {
	up := &fakeUpstream{results: []func(*http.Request) (*http.Response, error){status(503, "busy"), status(200, "ok")}}
	big := strings.Repeat("b", MaxBuffer+10)
	w, err, _ := serve(t, table(t, retryAction("5xx", 3)), up, big)
	if err != nil || w.Code != 503 || len(up.bodies) != 1 || len(up.bodies[0]) != len(big) {
		t.Fatalf("got %d %v after %d attempts", w.Code, err, len(up.bodies))
	}
}

func TestRetryOverflowReplaysLastResponse(t *testing.T) {
	up := &fakeUpstream{results: []func(*http.Request) (*http.Response, error){status(503, "first"), fail(rflag.UO)}}
	w, err, _ := serve(t, table(t, retryAction("5xx", 3)), up, "")
	if err != nil || w.Code != 503 || w.Body.String() != "first" {
		t.Fatalf("got %d %q %v", w.Code, w.Body, err)
	}
}

func TestNotRetriable(t *testing.T) {
	for _, tc := range []struct {
		on   string
		res  func(*http.Request) (*http.Response, error)
		flag rflag.Flags
	}{
		{"connect-failure", fail(rflag.UH), rflag.UH},
		{"5xx", fail(rflag.UO), rflag.UO},
		{"retriable-4xx", status(404, ""), 0},
	} {
		up := &fakeUpstream{results: []func(*http.Request) (*http.Response, error){tc.res, status(200, "")}}
		_, err, _ := serve(t, table(t, retryAction(tc.on, 2)), up, "")
		var fe *rflag.Error
		if len(up.bodies) != 1 || (tc.flag != 0 && (!errorsAs(err, &fe) || fe.Flag != tc.flag)) {
			t.Errorf("%s: %d attempts, err %v", tc.on, len(up.bodies), err)
		}
	}
}

func TestGrpcTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"100m": 100 * time.Millisecond, "5S": 5 * time.Second, "1H": time.Hour, "3u": 3 * time.Microsecond} {
		if d, ok := grpcTimeout(in); !ok || d != want {
			t.Errorf("%s: %v %v", in, d, ok)
		}
	}
	for _, in := range []string{"", "5", "5x", "-1S", "1234567890S"} {
		if _, ok := grpcTimeout(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	var got []time.Duration
	rt := &Router{sleep: func(ctx context.Context, d time.Duration) error { got = append(got, d); return nil }}
	p := &route.RetryPolicy{BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond}
	for i := 0; i < 200; i++ {
		for attempt := 1; attempt <= 6; attempt++ {
			rt.backoff(context.Background(), p, attempt)
			d := got[len(got)-1]
			upper := min(p.BackoffBase<<(attempt-1), p.BackoffMax)
			if d <= 0 || d > upper {
				t.Fatalf("attempt %d: %v outside (0, %v]", attempt, d, upper)
			}
		}
	}
}

func TestShadowHostAndHopHeaders(t *testing.T) {
	for in, want := range map[string]string{"reviews": "reviews-shadow", "reviews:9080": "reviews-shadow:9080"} {
		if got := shadowHost(in); got != want {
			t.Errorf("%s: %s", in, got)
		}
	}
	h := http.Header{"Connection": {"close, X-Hop"}, "X-Hop": {"1"}, "Keep-Alive": {"x"}, "Te": {"trailers"}, "X-Keep": {"1"}}
	stripHop(h)
	if len(h) != 2 || h.Get("Te") != "trailers" || h.Get("X-Keep") != "1" {
		t.Errorf("after strip: %v", h)
	}
}

func errorsAs(err error, fe **rflag.Error) bool {
	e, ok := err.(*rflag.Error)
	if ok {
		*fe = e
	}
	return ok
}
