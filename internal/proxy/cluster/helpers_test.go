package cluster

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeClock is a settable Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func sockAddr(hostport string) *corev3.Address {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		panic(err)
	}
	port, _ := strconv.Atoi(p)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}
}

func lbEndpoint(addr string) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
		Endpoint: &endpointv3.Endpoint{Address: sockAddr(addr)}}}
}

func assignment(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, a := range addrs {
		lle.LbEndpoints = append(lle.LbEndpoints, lbEndpoint(a))
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{lle}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
		ConnectTimeout: durationpb.New(2 * time.Second),
	}
}

func staticCluster(name string, addrs ...string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LoadAssignment:       assignment(name, addrs...),
	}
}

func breakers(maxConn, maxPending, maxReq, maxRetries uint32) *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(maxConn),
		MaxPendingRequests: wrapperspb.UInt32(maxPending),
		MaxRequests:        wrapperspb.UInt32(maxReq),
		MaxRetries:         wrapperspb.UInt32(maxRetries),
	}}}
}

// backend is a real HTTP server on loopback that counts connections and
// answers with its own address.
type backend struct {
	*httptest.Server
	conns  atomic.Int64
	closed atomic.Int64
	status atomic.Int64 // 0: 200
	hits   atomic.Int64
}

func newBackend(t testing.TB) *backend {
	b := &backend{}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		io.WriteString(w, b.Listener.Addr().String())
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.closed.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return b.Listener.Addr().String() }

func build(t testing.TB, prev *Set, cs []*clusterv3.Cluster, as map[string]*endpointv3.ClusterLoadAssignment, opts Options) *Set {
	t.Helper()
	s, err := Build(prev, cs, as, nil, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

// get sends GET / through c and returns status and body.
func get(t testing.TB, c *Cluster, o *RequestOptions) (int, string, *Attempt, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	resp, att, err := c.RoundTrip(req, o)
	if err != nil {
		return 0, "", att, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), att, nil
}

func stringsReader(s string) io.Reader { return &onceReader{s: s} }

// onceReader is a reader without WriterTo/Len, so requests send it chunked.
type onceReader struct {
	s    string
	done bool
}

func (r *onceReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	r.done = true
	return copy(p, r.s), nil
}
