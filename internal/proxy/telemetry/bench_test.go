package telemetry

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/accesslog"
	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/route"
)

type benchEnv struct{ set *cluster.Set }

func (e *benchEnv) RouteTable(string) *route.Table       { return nil }
func (e *benchEnv) Cluster(name string) *cluster.Cluster { return e.set.Get(name) }

// startBenchProxy runs an outbound-style HCM (client sidecar) in front of
// backend, with the given observer factory (nil: telemetry off).
func startBenchProxy(b *testing.B, backend string, observe func(*hcmv3.HttpConnectionManager) (hcm.Observer, error), logs []*accesslogv3.AccessLog) string {
	b.Helper()
	ap := netip.MustParseAddrPort(backend)
	name := "outbound|8000||httpbin.default.svc.cluster.local"
	c := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: ap.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())}}}}}}}}}}}}
	set, err := cluster.Build(nil, []*clusterv3.Cluster{c}, nil, nil, cluster.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(set.Close)
	router, _ := anypb.New(&routerv3.Router{})
	cfg := &hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_8000", AccessLog: logs,
		HttpFilters: []*hcmv3.HttpFilter{{Name: route.RouterFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "8000",
			VirtualHosts: []*routev3.VirtualHost{{Name: "httpbin", Domains: []string{"*"}, Routes: []*routev3.Route{{Name: "default",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}}}}}}}}
	m, err := hcm.New(cfg, &benchEnv{set}, hcm.Options{Observe: observe})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			info := &downstream.Info{Listener: "bench", FilterChain: "bench", Local: netip.MustParseAddrPort(c.LocalAddr().String()),
				Remote: netip.MustParseAddrPort(c.RemoteAddr().String())}
			info.OriginalDst = info.Local
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.ServeConn(c, info)
			}()
		}
	}()
	return ln.Addr().String()
}

func benchGET(b *testing.B, observe func(*hcmv3.HttpConnectionManager) (hcm.Observer, error), logs []*accesslogv3.AccessLog) {
	payload := strings.Repeat("x", 1024)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		io.WriteString(w, payload)
	}))
	b.Cleanup(be.Close)
	addr := startBenchProxy(b, strings.TrimPrefix(be.URL, "http://"), observe, logs)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(c.CloseIdleConnections)
	req, _ := http.NewRequest("GET", "http://"+addr+"/bench", nil)
	req.Host = "httpbin:8000"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 1024 {
			b.Fatalf("got %d, %d bytes", resp.StatusCode, n)
		}
	}
}

// BenchmarkProxiedGET: one keep-alive GET through a client-side HCM and
// the real cluster package to a 1 KiB backend; Off has no observer, On
// records istio_* metrics and does the metadata exchange, OnNoExchange
// records metrics without exchange headers, AccessLog also formats an
// access log line (to a discarding sink). The difference is telemetry's
// cost per request; the exchange headers account for On's extra
// allocations (the upstream hop parses two more headers).
func BenchmarkProxiedGET(b *testing.B) {
	b.Run("Off", func(b *testing.B) { benchGET(b, nil, nil) })
	b.Run("On", func(b *testing.B) {
		tel := New(Options{Node: meta("curl", "curl", "v1")})
		b.Cleanup(tel.Close)
		benchGET(b, tel.HTTP, nil)
	})
	b.Run("OnNoExchange", func(b *testing.B) {
		// No node identity: metrics only, no peer headers on the wire.
		tel := New(Options{})
		b.Cleanup(tel.Close)
		benchGET(b, tel.HTTP, nil)
	})
	b.Run("AccessLog", func(b *testing.B) {
		tel := New(Options{Node: meta("curl", "curl", "v1"), Stdout: io.Discard})
		b.Cleanup(tel.Close)
		a, _ := anypb.New(defaultFileLog())
		benchGET(b, tel.HTTP, []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}})
	})
}

// BenchmarkObserver isolates the observer's per-request work (request
// headers, response headers, metrics) from the network.
func BenchmarkObserver(b *testing.B) {
	tel := New(Options{Node: meta("curl", "curl", "v1")})
	defer tel.Close()
	peer := New(Options{Node: meta("httpbin-v1", "httpbin", "v1")})
	o, _ := tel.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_8000"})
	r := httptest.NewRequest("GET", "http://httpbin:8000/get", nil)
	var info filter.Info
	resp := http.Header{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		info = filter.Info{Status: 200, Authority: "httpbin:8000", Cluster: "outbound|8000||httpbin.default.svc.cluster.local",
			Duration: 3 * time.Millisecond, BytesOut: 1024}
		o.Request(r, &info)
		resp[HeaderPeerMetadata], resp[HeaderPeerMetadataID] = peer.md, peer.mdID
		o.Response(resp, &info)
		o.Complete(&info)
	}
}

func defaultFileLog() *filev3.FileAccessLog {
	return &filev3.FileAccessLog{Path: "/dev/stdout"}
}

// BenchmarkAccessLogLine is the request path's share of access logging:
// rendering Istio's default text line into a pooled buffer.
func BenchmarkAccessLogLine(b *testing.B) {
	f, err := CompileFormat(accesslog.TextFormat)
	if err != nil {
		b.Fatal(err)
	}
	in := &filter.Info{Start: time.Now(), Duration: 3 * time.Millisecond, Method: "GET", Path: "http://httpbin:8000/get",
		Protocol: "HTTP/1.1", Authority: "httpbin:8000", UserAgent: "curl/8.0", RequestID: "8f3a1c2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b",
		Status: 200, Details: "via_upstream", BytesOut: 1024, ServiceTime: 2 * time.Millisecond,
		Cluster: "outbound|8000||httpbin.default.svc.cluster.local", Host: "127.0.10.7:8080", RouteName: "default",
		Downstream: &downstream.Info{Local: netip.MustParseAddrPort("127.0.10.10:15080"), Remote: netip.MustParseAddrPort("127.0.11.10:40000")}}
	e := &Entry{Info: in}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bp := linePool.Get().(*[]byte)
		*bp = f.AppendText((*bp)[:0], e)
		linePool.Put(bp)
	}
}
