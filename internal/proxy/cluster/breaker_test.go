package cluster

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// blocking is a backend whose requests wait until released.
type blocking struct {
	*httptest.Server
	arrived chan struct{}
	release chan struct{}
}

func newBlocking(t *testing.T) *blocking {
	b := &blocking{arrived: make(chan struct{}, 100), release: make(chan struct{}, 100)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.arrived <- struct{}{}
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(func() {
		close(b.release)
		b.Close()
	})
	return b
}

func (b *blocking) addr() string { return b.Listener.Addr().String() }

func protocolOptions(t testing.TB, o *httpv3.HttpProtocolOptions) map[string]*anypb.Any {
	a, err := anypb.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*anypb.Any{httpProtocolOptionsName: a}
}

func maxRequestsPerConn(t testing.TB, n uint32) map[string]*anypb.Any {
	return protocolOptions(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(n)}})
}

func isFlag(err error, f rflag.Flags) bool {
	var fe *rflag.Error
	return errors.As(err, &fe) && fe.Flag == f && fe.Status == 503
}

type result struct {
	code int
	err  error
}

func async(t *testing.T, c *Cluster, o *RequestOptions) chan result {
	ch := make(chan result, 1)
	go func() {
		code, _, _, err := get(t, c, o)
		ch <- result{code, err}
	}()
	return ch
}

// The Istio circuit-breaking task: maxConnections 1, http1MaxPendingRequests
// 1, maxRequestsPerConnection 1 and three concurrent clients: one is served,
// one waits as pending and is served after, one overflows with 503 UO.
func TestCircuitBreakerPendingQueue(t *testing.T) {
	b := newBlocking(t)
	pc := staticCluster("c", b.addr())
	pc.CircuitBreakers = breakers(1, 1, 1024, 3)
	pc.TypedExtensionProtocolOptions = maxRequestsPerConn(t, 1)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	st := c.Stats()

	first := async(t, c, nil)
	<-b.arrived
	second := async(t, c, nil)
	meshtest.WaitFor(t, "pending request", func() bool { return st.UpstreamRqPendingActive.Load() == 1 })
	if _, _, _, err := get(t, c, nil); !isFlag(err, rflag.UO) {
		t.Fatalf("third request: got %v, want 503 UO", err)
	}
	if st.UpstreamRqPendingOverflow.Load() != 1 || st.UpstreamCxOverflow.Load() < 1 {
		t.Fatalf("pending_overflow=%d cx_overflow=%d", st.UpstreamRqPendingOverflow.Load(), st.UpstreamCxOverflow.Load())
	}
	b.release <- struct{}{}
	if r := <-first; r.err != nil || r.code != 200 {
		t.Fatalf("first: %+v", r)
	}
	<-b.arrived
	b.release <- struct{}{}
	if r := <-second; r.err != nil || r.code != 200 {
		t.Fatalf("second (pending): %+v", r)
	}
	if got := st.UpstreamCxTotal.Load(); got != 2 {
		t.Fatalf("upstream_cx_total = %d, want 2 (max_requests_per_connection 1)", got)
	}
	meshtest.WaitFor(t, "connections closed", func() bool { return st.UpstreamCxActive.Load() == 0 })
}

func TestCircuitBreakerMaxRequests(t *testing.T) {
	b := newBlocking(t)
	pc := staticCluster("c", b.addr())
	pc.CircuitBreakers = breakers(1024, 1024, 1, 3)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	first := async(t, c, nil)
	<-b.arrived
	if _, _, _, err := get(t, c, nil); !isFlag(err, rflag.UO) {
		t.Fatalf("got %v, want UO", err)
	}
	if c.Stats().UpstreamRqPendingOverflow.Load() != 1 {
		t.Fatal("upstream_rq_pending_overflow not counted")
	}
	b.release <- struct{}{}
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	// The slot is free again once the body was consumed.
	go func() { <-b.arrived; b.release <- struct{}{} }()
	if code, _, _, err := get(t, c, nil); err != nil || code != 200 {
		t.Fatalf("after release: %d %v", code, err)
	}
}

func TestCircuitBreakerMaxRetries(t *testing.T) {
	b := newBlocking(t)
	pc := staticCluster("c", b.addr())
	pc.CircuitBreakers = breakers(1024, 1024, 1024, 1)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	retry := &RequestOptions{Retry: true}
	first := async(t, c, retry)
	<-b.arrived
	if _, _, _, err := get(t, c, retry); !isFlag(err, rflag.UO) {
		t.Fatalf("got %v, want UO", err)
	}
	st := c.Stats()
	if st.UpstreamRqRetry.Load() != 2 || st.UpstreamRqRetryOverflow.Load() != 1 {
		t.Fatalf("retry=%d retry_overflow=%d", st.UpstreamRqRetry.Load(), st.UpstreamRqRetryOverflow.Load())
	}
	// A first attempt is not a retry and is not limited by max_retries.
	second := async(t, c, nil)
	<-b.arrived
	b.release <- struct{}{}
	b.release <- struct{}{}
	for _, ch := range []chan result{first, second} {
		if r := <-ch; r.err != nil || r.code != 200 {
			t.Fatalf("%+v", r)
		}
	}
	if st.RqActiveRetries.Load() != 0 || st.UpstreamRqActive.Load() != 0 {
		t.Fatalf("gauges not released: retries=%d active=%d", st.RqActiveRetries.Load(), st.UpstreamRqActive.Load())
	}
}

// Many concurrent clients against maxConnections 1 / pending 1: some
// overflow, the rest succeed, nothing else happens.
func TestCircuitBreakerConcurrentMix(t *testing.T) {
	for _, perConn := range []uint32{0, 1} {
		t.Run(fmt.Sprintf("max_requests_per_connection_%d", perConn), func(t *testing.T) {
			concurrentMix(t, perConn)
		})
	}
}

func concurrentMix(t *testing.T, perConn uint32) {
	b := newBackend(t)
	pc := staticCluster("c", b.addr())
	pc.CircuitBreakers = breakers(1, 1, 1024, 3)
	if perConn > 0 {
		pc.TypedExtensionProtocolOptions = maxRequestsPerConn(t, perConn)
	}
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	var mu sync.Mutex
	ok, uo := 0, 0
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				code, _, _, err := get(t, c, nil)
				mu.Lock()
				switch {
				case err == nil && code == 200:
					ok++
				case isFlag(err, rflag.UO):
					uo++
				default:
					t.Errorf("unexpected %d %v", code, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok+uo != 90 || ok == 0 {
		t.Fatalf("ok=%d uo=%d", ok, uo)
	}
	if perConn == 0 && b.conns.Load() != 1 {
		t.Fatalf("backend saw %d connections, want 1", b.conns.Load())
	}
	if perConn == 1 && b.conns.Load() != int64(ok) {
		t.Fatalf("backend saw %d connections for %d requests at one request per connection", b.conns.Load(), ok)
	}
	if got := s.Get("c").Stats().UpstreamRqPendingOverflow.Load(); got != uint64(uo) {
		t.Fatalf("upstream_rq_pending_overflow = %d, want %d", got, uo)
	}
}
