package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

func TestCarryOverAcrossBuilds(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	cs := []*clusterv3.Cluster{edsCluster("c")}
	as := map[string]*endpointv3.ClusterLoadAssignment{"c": assignment("c", b1.addr(), b2.addr())}
	s1 := build(t, nil, cs, as, Options{})
	served(t, s1.Get("c"), 4)

	// Identical config: the very same cluster, counters included.
	s2 := build(t, s1, cs, as, Options{})
	if s2.Get("c") != s1.Get("c") {
		t.Fatal("unchanged cluster was not carried over")
	}
	s1.Close()
	served(t, s2.Get("c"), 2)
	if b1.conns.Load() != 1 || b2.conns.Load() != 1 || b1.closed.Load()+b2.closed.Load() != 0 {
		t.Fatal("connections were not kept across an identical Build")
	}

	// Endpoints change: counters and the remaining host's pool survive; the
	// removed host's connections close when the old Set closes.
	as2 := map[string]*endpointv3.ClusterLoadAssignment{"c": assignment("c", b1.addr())}
	s3 := build(t, s2, cs, as2, Options{})
	if s3.Get("c").Stats() != s2.Get("c").Stats() {
		t.Fatal("stats not carried over an endpoint change")
	}
	s2.Close()
	meshtest.WaitFor(t, "removed host's connection to close", func() bool { return b2.closed.Load() == 1 })
	served(t, s3.Get("c"), 3)
	if b1.conns.Load() != 1 || b1.closed.Load() != 0 {
		t.Fatalf("remaining host's pool not kept: conns=%d closed=%d", b1.conns.Load(), b1.closed.Load())
	}
	if got := s3.Get("c").Stats().UpstreamRqTotal.Load(); got != 9 {
		t.Fatalf("upstream_rq_total = %d, want 9 across builds", got)
	}

	// A changed cluster gets new pools (closing the old Set closes the old
	// ones) but keeps its stats, as Envoy's stats store does.
	changed := edsCluster("c")
	changed.ConnectTimeout = durationpb.New(3 * time.Second)
	s4 := build(t, s3, []*clusterv3.Cluster{changed}, as2, Options{})
	s3.Close()
	meshtest.WaitFor(t, "old pool to close", func() bool { return b1.closed.Load() == 1 })
	served(t, s4.Get("c"), 1)
	if b1.conns.Load() != 2 {
		t.Fatalf("changed cluster reused the old pool: %d connections", b1.conns.Load())
	}
	if got := s4.Get("c").Stats().UpstreamRqTotal.Load(); got != 10 {
		t.Fatalf("upstream_rq_total = %d, want 10 (stats persist by name)", got)
	}
	s4.Close()
	meshtest.WaitFor(t, "Set.Close to close connections", func() bool { return b1.closed.Load() == 2 })
}

func TestCloseWithRequestInFlight(t *testing.T) {
	b := newBlocking(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", b.addr())}, nil, Options{})
	c := s.Get("c")
	ch := async(t, c, nil)
	<-b.arrived
	s.Close() // drains: the in-flight request completes
	b.release <- struct{}{}
	if r := <-ch; r.err != nil || r.code != 200 {
		t.Fatalf("%+v", r)
	}
	meshtest.WaitFor(t, "connection closed after the request", func() bool { return c.Stats().UpstreamCxActive.Load() == 0 })
}

func TestValidation(t *testing.T) {
	good := func() *clusterv3.Cluster { return staticCluster("c", "127.0.0.1:80") }
	for _, tc := range []struct {
		name string
		mod  func(*clusterv3.Cluster)
		want string
	}{
		{"unsupported_field", func(c *clusterv3.Cluster) {
			c.PerConnectionBufferHighWatermarkTimeout = durationpb.New(time.Second)
		}, "per_connection_buffer_high_watermark_timeout: not supported"},
		{"lb_policy", func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG }, "lb_policy"},
		{"original_dst_rr", func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			c.LoadAssignment = nil
		}, "lb_policy: ORIGINAL_DST clusters require CLUSTER_PROVIDED"},
		{"ring_size", func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(100), MaximumRingSize: wrapperspb.UInt64(10)}}
		}, "ring_hash_lb_config"},
		{"hostname_in_static", func(c *clusterv3.Cluster) { c.LoadAssignment = assignment("c", "example.com:80") },
			"load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address"},
		{"http3", func(c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http3ProtocolOptions{}}}})
		}, "explicit_http_config"},
		{"health_checks", func(c *clusterv3.Cluster) { c.HealthChecks = []*corev3.HealthCheck{{}} }, "health_checks"},
		{"outlier_split", func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true}
		}, "outlier_detection.split_external_local_origin_errors"},
		{"unknown_socket", func(c *clusterv3.Cluster) {
			c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.alts"}
		}, "transport_socket.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := good()
			tc.mod(pc)
			_, err := Build(nil, []*clusterv3.Cluster{pc}, nil, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), `cluster "c"`) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error naming cluster and %q", err, tc.want)
			}
		})
	}
	if _, err := Build(nil, []*clusterv3.Cluster{good(), good()}, nil, nil, Options{}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("duplicate: %v", err)
	}
	// A failed Build leaves the previous Set untouched.
	b := newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("ok", b.addr())}, nil, Options{})
	served(t, s.Get("ok"), 1)
	bad := good()
	bad.HealthChecks = []*corev3.HealthCheck{{}}
	if _, err := Build(s, []*clusterv3.Cluster{staticCluster("ok", b.addr()), bad}, nil, nil, Options{}); err == nil {
		t.Fatal("want error")
	}
	served(t, s.Get("ok"), 1)
	if b.conns.Load() != 1 || b.closed.Load() != 0 {
		t.Fatal("failed Build disturbed the previous Set")
	}
	s.Close()
}

func TestEmptyAndUnknown(t *testing.T) {
	s := build(t, nil, []*clusterv3.Cluster{edsCluster("noeps")}, nil, Options{})
	defer s.Close()
	if _, _, _, err := get(t, s.Get("noeps"), nil); !isFlag(err, rflag.UH) {
		t.Fatalf("EDS cluster without endpoints: %v, want UH", err)
	}
	var nilSet *Set
	if nilSet.Get("x") != nil {
		t.Fatal("nil Set must answer nil")
	}
}

func TestConnectFailure(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", addr)}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	_, _, att, err := get(t, c, nil)
	if !isFlag(err, rflag.UF) || att == nil || att.Host != addr {
		t.Fatalf("got %v %+v, want UF", err, att)
	}
	if c.Stats().UpstreamCxConnectFail.Load() != 1 || c.Stats().UpstreamCxActive.Load() != 0 {
		t.Fatal("connect failure not accounted")
	}
}

func TestUpstreamResetBeforeResponse(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			c.Read(buf)
			c.Close()
		}
	}()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", l.Addr().String())}, nil, Options{})
	defer s.Close()
	if _, _, _, err := get(t, s.Get("c"), nil); !isFlag(err, rflag.UC) {
		t.Fatalf("got %v, want UC", err)
	}
}

func TestTimeoutGivesUT(t *testing.T) {
	b := newBlocking(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", b.addr())}, nil, Options{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/", nil)
	_, _, err := s.Get("c").RoundTrip(req, nil)
	var fe *rflag.Error
	if !errors.As(err, &fe) || fe.Flag != rflag.UT || fe.Status != 504 {
		t.Fatalf("got %v, want UT 504", err)
	}
}

func TestStaleKeepAliveRetried(t *testing.T) {
	// The server closes idle keep-alive connections right after each
	// response, racing the next request; a fresh connection is used.
	var n int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		io.WriteString(w, "x")
	}))
	srv.Config.IdleTimeout = time.Nanosecond
	srv.Start()
	defer srv.Close()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", srv.Listener.Addr().String())}, nil, Options{})
	defer s.Close()
	for range 20 {
		if code, _, _, err := get(t, s.Get("c"), nil); err != nil || code != 200 {
			t.Fatalf("%d %v", code, err)
		}
	}
}

func TestHTTP2Multiplexing(t *testing.T) {
	const n = 8
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want h2", 400)
			return
		}
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		<-all // only completes when all n requests are in flight at once
		fmt.Fprint(w, r.Header.Get("User-Agent"))
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	var conns sync.Map
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) { conns.Store(c, true) }
	srv.Start()
	defer srv.Close()

	pc := staticCluster("c", srv.Listener.Addr().String())
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{}}}})
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, _, err := get(t, s.Get("c"), nil)
			if err != nil || code != 200 || body != "" {
				t.Errorf("%d %q %v (a proxy adds no User-Agent)", code, body, err)
			}
		}()
	}
	wg.Wait()
	count := 0
	conns.Range(func(any, any) bool { count++; return true })
	if count != 1 {
		t.Fatalf("%d connections, want 1 multiplexed", count)
	}
	if got := s.Get("c").Stats().UpstreamCxTotal.Load(); got != 1 {
		t.Fatalf("upstream_cx_total = %d", got)
	}
}

func TestUseDownstreamProtocol(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	pc := staticCluster("c", srv.Listener.Addr().String())
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}}})
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	for _, tc := range []struct {
		p    downstream.Protocol
		want string
	}{{downstream.HTTP1, "HTTP/1.1"}, {downstream.HTTP2, "HTTP/2.0"}} {
		_, body, _, err := get(t, s.Get("c"), &RequestOptions{Downstream: tc.p})
		if err != nil || body != tc.want {
			t.Fatalf("downstream %v: %q %v", tc.p, body, err)
		}
	}
}

func TestDialTCP(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	pc := staticCluster("tcp", l.Addr().String())
	pc.CircuitBreakers = breakers(1, 1024, 1024, 3)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	c := s.Get("tcp")
	conn, att, err := c.Dial(context.Background(), nil)
	if err != nil || att.Host != l.Addr().String() || att.LocalAddr == "" {
		t.Fatalf("Dial: %v %+v", err, att)
	}
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	if _, _, err := c.Dial(context.Background(), nil); !isFlag(err, rflag.UO) {
		t.Fatalf("second Dial over max_connections: %v", err)
	}
	conn.Close()
	if c.Stats().UpstreamCxActive.Load() != 0 {
		t.Fatal("cx_active not released")
	}
	conn2, _, err := c.Dial(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // a cluster update must not cut TCP sessions: the owner closes
	conn2.Write([]byte("pong"))
	if _, err := io.ReadFull(conn2, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("TCP session cut by Set.Close: %q %v", buf, err)
	}
	conn2.Close()
	conn2.Close()
	if c.Stats().UpstreamCxActive.Load() != 0 {
		t.Fatal("cx_active not released")
	}
}

func TestOriginalDst(t *testing.T) {
	b := newBackend(t)
	_, port, _ := net.SplitHostPort(b.addr())
	pc := &clusterv3.Cluster{Name: "PassthroughCluster", ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED}
	res := resolverFunc(func(_ context.Context, h string) ([]string, error) {
		if h == "backend.test" {
			return []string{"127.0.0.1"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
	})
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Resolver: res})
	defer s.Close()
	c := s.Get("PassthroughCluster")
	for _, dst := range []string{b.addr(), "backend.test:" + port} {
		code, body, att, err := get(t, c, &RequestOptions{OriginalDst: dst})
		// Attempt.Host is the resolved address.
		if err != nil || code != 200 || body != b.addr() || att.Host != b.addr() {
			t.Fatalf("%s: %d %q %+v %v", dst, code, body, att, err)
		}
	}
	if _, _, _, err := get(t, c, &RequestOptions{OriginalDst: "nowhere.test:80"}); !isFlag(err, rflag.UF) {
		t.Fatalf("unresolvable: %v", err)
	}
	if _, _, _, err := get(t, c, &RequestOptions{}); !isFlag(err, rflag.UH) {
		t.Fatalf("no destination: %v", err)
	}
	if _, ok := c.OriginalDstHeader(); ok {
		t.Fatal("no use_http_header configured")
	}
	var buf bytes.Buffer
	s.Dump(&buf)
	if !strings.Contains(buf.String(), "PassthroughCluster::"+b.addr()+"::rq_total::1") {
		t.Fatalf("dump:\n%s", buf.String())
	}
}

type resolverFunc func(ctx context.Context, host string) ([]string, error)

func (f resolverFunc) LookupHost(ctx context.Context, host string) ([]string, error) {
	return f(ctx, host)
}

func TestDump(t *testing.T) {
	b := newBackend(t)
	pc := staticCluster("outbound|9080||reviews.default.svc.cluster.local", b.addr())
	pc.CircuitBreakers = breakers(7, 8, 9, 2)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	served(t, s.Get(pc.Name), 3)
	var buf bytes.Buffer
	s.Dump(&buf)
	out := buf.String()
	for _, want := range []string{
		"outbound|9080||reviews.default.svc.cluster.local::default_priority::max_connections::7\n",
		"outbound|9080||reviews.default.svc.cluster.local::default_priority::max_retries::2\n",
		"outbound|9080||reviews.default.svc.cluster.local::" + b.addr() + "::health_flags::healthy\n",
		"outbound|9080||reviews.default.svc.cluster.local::" + b.addr() + "::rq_total::3\n",
		"outbound|9080||reviews.default.svc.cluster.local::" + b.addr() + "::cx_active::1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
}

func TestStrictDNS(t *testing.T) {
	b1 := newBackend(t)
	_, port, _ := net.SplitHostPort(b1.addr())
	l2, err := net.Listen("tcp", "127.0.0.2:"+port)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	b2 := &backend{}
	b2.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, l2.Addr().String())
	}))
	b2.Listener.Close()
	b2.Listener = l2
	b2.Start()
	defer b2.Close()

	var mu sync.Mutex
	answer := []string{"127.0.0.1", "127.0.0.2"}
	res := resolverFunc(func(_ context.Context, h string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if h != "svc.test" {
			return nil, errors.New("unknown")
		}
		return append([]string(nil), answer...), nil
	})
	clock := newFakeClock()
	pc := staticCluster("dns")
	pc.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
	pc.LoadAssignment = assignment("dns", "svc.test:"+port)
	pc.DnsRefreshRate = durationpb.New(5 * time.Second)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Resolver: res, Clock: clock})
	defer s.Close()
	c := s.Get("dns")
	got := served(t, c, 4)
	if got[b1.addr()] != 2 || got[l2.Addr().String()] != 2 {
		t.Fatalf("both resolved addresses should serve: %v", got)
	}
	mu.Lock()
	answer = []string{"127.0.0.2"}
	mu.Unlock()
	served(t, c, 2) // before the refresh is due nothing changes
	if v := c.cur.Load(); len(v.members) != 2 {
		t.Fatal("re-resolved before dns_refresh_rate")
	}
	clock.Advance(6 * time.Second)
	meshtest.WaitFor(t, "re-resolution", func() bool {
		served(t, c, 1)
		return len(c.cur.Load().members) == 1
	})
	if got := served(t, c, 3); got[l2.Addr().String()] != 3 {
		t.Fatalf("after refresh: %v", got)
	}
	meshtest.WaitFor(t, "removed DNS host's connection to close", func() bool { return b1.closed.Load() == 1 })
}

func TestLogicalDNS(t *testing.T) {
	b := newBackend(t)
	_, port, _ := net.SplitHostPort(b.addr())
	lookups := 0
	res := resolverFunc(func(_ context.Context, h string) ([]string, error) {
		lookups++
		return []string{"127.0.0.1", "127.0.0.3"}, nil
	})
	pc := staticCluster("ldns")
	pc.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
	pc.LoadAssignment = assignment("ldns", "api.test:"+port)
	pc.TypedExtensionProtocolOptions = maxRequestsPerConn(t, 1)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Resolver: res})
	defer s.Close()
	got := served(t, s.Get("ldns"), 3)
	if got[b.addr()] != 3 || b.hits.Load() != 3 {
		t.Fatalf("served %v hits %d", got, b.hits.Load())
	}
	if lookups != 3 {
		t.Fatalf("%d lookups, want one per new connection", lookups)
	}
}

func TestLocalityWeighted(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: &corev3.Locality{Region: "r", Zone: "a"}, LoadBalancingWeight: wrapperspb.UInt32(3),
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(a.addr())}},
		{Locality: &corev3.Locality{Region: "r", Zone: "b"}, LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(b.addr())}},
	}}
	pc := edsCluster("c")
	pc.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
		LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}}
	s := build(t, nil, []*clusterv3.Cluster{pc}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	defer s.Close()
	got := served(t, s.Get("c"), 40)
	if got[a.addr()] != 30 || got[b.addr()] != 10 {
		t.Fatalf("locality weights 3:1 gave %v", got)
	}
}

func TestPriorityFailover(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(a.addr())}},
		{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(b.addr())}},
	}}
	s := build(t, nil, []*clusterv3.Cluster{edsCluster("c")}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	if got := served(t, s.Get("c"), 4); got[a.addr()] != 4 {
		t.Fatalf("priority 0 should take all traffic: %v", got)
	}
	cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment) // Build keeps its inputs: never mutate them
	cla.Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_UNHEALTHY
	s2 := build(t, s, []*clusterv3.Cluster{edsCluster("c")}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	s.Close()
	defer s2.Close()
	if got := served(t, s2.Get("c"), 4); got[b.addr()] != 4 {
		t.Fatalf("failover to priority 1: %v", got)
	}
}

func TestExcludePreviousHosts(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", a.addr(), b.addr())}, nil, Options{})
	defer s.Close()
	for range 6 {
		_, _, att, err := get(t, s.Get("c"), &RequestOptions{Exclude: []string{a.addr()}})
		if err != nil || att.Host != b.addr() {
			t.Fatalf("excluded host picked: %+v %v", att, err)
		}
	}
}

// Envoy's priority load: P0 with half its hosts healthy has health
// 50 × 1.4 = 70, so it takes 70% and P1 the remaining 30%.
func TestPrioritySpillOver(t *testing.T) {
	a, bad, b := newBackend(t), newBackend(t), newBackend(t)
	p0 := []*endpointv3.LbEndpoint{lbEndpoint(a.addr()), lbEndpoint(bad.addr())}
	p0[1].HealthStatus = corev3.HealthStatus_UNHEALTHY
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{LbEndpoints: p0},
		{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(b.addr())}},
	}}
	s := build(t, nil, []*clusterv3.Cluster{edsCluster("c")}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	defer s.Close()
	got := served(t, s.Get("c"), 1000)
	if got[bad.addr()] != 0 || got[a.addr()] < 630 || got[a.addr()] > 770 || got[a.addr()]+got[b.addr()] != 1000 {
		t.Fatalf("want about 700/300, got %v", got)
	}
}

func TestOriginalDstHeader(t *testing.T) {
	pc := &clusterv3.Cluster{Name: "od", ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		LbConfig: &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
			UseHttpHeader: true}}}
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	if name, ok := s.Get("od").OriginalDstHeader(); !ok || name != "x-envoy-original-dst-host" {
		t.Fatalf("got %q %v", name, ok)
	}
}

func TestRingHashRoutesByKey(t *testing.T) {
	var addrs []string
	for range 4 {
		addrs = append(addrs, newBackend(t).addr())
	}
	pc := staticCluster("c", addrs...)
	pc.LbPolicy = clusterv3.Cluster_RING_HASH
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	hosts := map[string]bool{}
	for k := range uint64(40) {
		o := &RequestOptions{HashKey: mix64(k), HasHash: true}
		_, _, first, err := get(t, s.Get("c"), o)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, _, again, _ := get(t, s.Get("c"), o); again.Host != first.Host {
				t.Fatalf("key %d went to %s then %s", k, first.Host, again.Host)
			}
		}
		hosts[first.Host] = true
	}
	if len(hosts) < 3 {
		t.Fatalf("40 keys landed on only %d hosts", len(hosts))
	}
}

func TestStrictDNSFailureKeepsHosts(t *testing.T) {
	b := newBackend(t)
	_, port, _ := net.SplitHostPort(b.addr())
	var mu sync.Mutex
	fail := false
	res := resolverFunc(func(_ context.Context, h string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("resolver down")
		}
		return []string{"127.0.0.1"}, nil
	})
	clock := newFakeClock()
	pc := staticCluster("dns")
	pc.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
	pc.LoadAssignment = assignment("dns", "svc.test:"+port)
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Resolver: res, Clock: clock})
	defer s.Close()
	c := s.Get("dns")
	served(t, c, 1)
	mu.Lock()
	fail = true
	mu.Unlock()
	clock.Advance(10 * time.Second)
	served(t, c, 1) // triggers the failing refresh
	meshtest.WaitFor(t, "refresh attempt", func() bool { return !c.dns.busy.Load() })
	if got := served(t, c, 3); got[b.addr()] != 3 {
		t.Fatalf("hosts lost on DNS failure: %v", got)
	}
}
