package hcm

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// testEnv is a fixed configuration: route tables by name and a cluster Set.
type testEnv struct {
	mu     sync.Mutex
	tables map[string]*route.Table
	set    *cluster.Set
}

func (e *testEnv) RouteTable(name string) *route.Table {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tables[name]
}

func (e *testEnv) Cluster(name string) *cluster.Cluster { return e.set.Get(name) }

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// upstream describes a test cluster.
type upstream struct {
	name  string
	addrs []string // ip:port
	h2    bool
	// mutate adjusts the cluster (breakers, …).
	mutate func(*clusterv3.Cluster)
}

func staticCluster(t testing.TB, u upstream) *clusterv3.Cluster {
	var lbs []*endpointv3.LbEndpoint
	for _, a := range u.addrs {
		ap := netip.MustParseAddrPort(a)
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ap.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())}}}}}}})
	}
	c := &clusterv3.Cluster{Name: u.name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: u.name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}}}
	if u.h2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t,
			&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
	}
	if u.mutate != nil {
		u.mutate(c)
	}
	return c
}

// proxy is a running Manager on a loopback listener.
type proxy struct {
	addr  string
	env   *testEnv
	mgr   *Manager
	infos chan *StreamInfo
	cfg   *hcmv3.HttpConnectionManager
	opts  Options
	// cur serves new connections (a listener update swaps it); mgr until set.
	cur atomic.Pointer[Manager]
	// detached counts the connections handed to a fresh goroutine.
	detached atomic.Int64
	// closeAll closes every open downstream connection, as a listener
	// after its drain timeout.
	closeAll func()
}

// swap builds a manager from the same config and hands new connections
// to it, as a listener update does; it returns the replaced one.
func (p *proxy) swap(t testing.TB) *Manager {
	t.Helper()
	m, err := New(p.cfg, p.env, p.opts)
	if err != nil {
		t.Fatal(err)
	}
	return p.cur.Swap(m)
}

type proxyConfig struct {
	routes    *routev3.RouteConfiguration // inline unless rds is set
	rds       bool
	clusters  []upstream
	fault     *faultv3.HTTPFault // nil: no fault filter
	noCors    bool
	mutateHCM func(*hcmv3.HttpConnectionManager)
	opts      Options
	tls       *tls.Config // terminate TLS before the manager, as the listener does
	xnetH2    bool        // x/net's HTTP/2 server, whatever -hcm.ownh2 says
}

func startProxy(t testing.TB, pc proxyConfig) *proxy {
	t.Helper()
	env := &testEnv{tables: map[string]*route.Table{}}
	var cs []*clusterv3.Cluster
	for _, u := range pc.clusters {
		cs = append(cs, staticCluster(t, u))
	}
	set, err := cluster.Build(nil, cs, nil, nil, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env.set = set
	t.Cleanup(set.Close)
	var filters []*hcmv3.HttpFilter
	if pc.fault != nil {
		filters = append(filters, &hcmv3.HttpFilter{Name: route.FaultFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, pc.fault)}})
	}
	if !pc.noCors {
		filters = append(filters, &hcmv3.HttpFilter{Name: route.CorsFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &corsv3.Cors{})}})
	}
	filters = append(filters, &hcmv3.HttpFilter{Name: route.RouterFilter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	cfg := &hcmv3.HttpConnectionManager{StatPrefix: "test", HttpFilters: filters,
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}}
	if pc.rds {
		tb, err := route.Compile(pc.routes)
		if err != nil {
			t.Fatal(err)
		}
		env.tables[pc.routes.GetName()] = tb
		cfg.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: pc.routes.GetName(),
			ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
	} else {
		cfg.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: pc.routes}
	}
	if pc.mutateHCM != nil {
		pc.mutateHCM(cfg)
	}
	p := &proxy{env: env, infos: make(chan *StreamInfo, 4096)}
	opts := pc.opts
	opts.OwnHTTP2 = (opts.OwnHTTP2 || *ownH2Flag) && !pc.xnetH2
	if opts.OnComplete == nil {
		opts.OnComplete = func(i *StreamInfo) {
			cp := *i
			select {
			case p.infos <- &cp:
			default:
			}
		}
	}
	m, err := New(cfg, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.mgr, p.cfg, p.opts = m, cfg, opts
	p.cur.Store(m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	p.closeAll = func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
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
			info := &downstream.Info{Listener: "test", Local: netip.MustParseAddrPort(c.LocalAddr().String()),
				Remote: netip.MustParseAddrPort(c.RemoteAddr().String())}
			info.OriginalDst = info.Local
			wg.Add(1)
			go func() {
				// As the listener: a connection the manager detaches is
				// forgotten when it says it is done.
				detached := false
				forget := func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					wg.Done()
				}
				info.Detach = func() func() {
					detached = true
					p.detached.Add(1)
					return forget
				}
				defer func() {
					if !detached {
						forget()
					}
				}()
				if pc.tls != nil {
					tc := tls.Server(c, pc.tls)
					if err := tc.Handshake(); err != nil {
						c.Close()
						return
					}
					st := tc.ConnectionState()
					info.TLS, info.ALPN = &st, []string{st.NegotiatedProtocol}
					c = tc
				}
				p.cur.Load().ServeConn(c, info)
			}()
		}
	}()
	return p
}

// nextInfo returns the next completed stream's info.
func (p *proxy) nextInfo(t testing.TB) *StreamInfo {
	t.Helper()
	select {
	case i := <-p.infos:
		return i
	case <-time.After(5 * time.Second):
		t.Fatal("no stream info reported")
		return nil
	}
}

// backend is a loopback HTTP server.
func backend(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	})
	return ln.Addr().String()
}

func client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Builders for route configuration.

func rc(vhosts ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "80", VirtualHosts: vhosts}
}

func vhost(routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}, Routes: routes, IncludeRequestAttemptCount: true}
}

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func toCluster(name string, mod ...func(*routev3.RouteAction)) *routev3.Route_Route {
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}, Timeout: durationpb.New(0)}
	for _, f := range mod {
		f(a)
	}
	return &routev3.Route_Route{Route: a}
}

func rt(name, prefix string, action any) *routev3.Route {
	r := &routev3.Route{Name: name, Match: prefixMatch(prefix)}
	switch a := action.(type) {
	case *routev3.Route_Route:
		r.Action = a
	case *routev3.Route_Redirect:
		r.Action = a
	case *routev3.Route_DirectResponse:
		r.Action = a
	}
	return r
}

type anypbAny = anypb.Any

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

type (
	hcmv3HCM                     = hcmv3.HttpConnectionManager
	corsv3CorsPolicy             = corsv3.CorsPolicy
	matcherv3StringMatcher       = matcherv3.StringMatcher
	matcherv3StringMatcher_Exact = matcherv3.StringMatcher_Exact
)

type (
	hcmv3HCMTracing      = hcmv3.HttpConnectionManager_Tracing
	hcmv3HttpFilter      = hcmv3.HttpFilter
	hcmv3HttpFilterTyped = hcmv3.HttpFilter_TypedConfig
	hcmv3HCMRouteConfig  = hcmv3.HttpConnectionManager_RouteConfig
	corsv3CorsFilter     = corsv3.Cors
	routerv3Router       = routerv3.Router
	faultv3HTTPFault     = faultv3.HTTPFault
)

type (
	corev3Http1Options = corev3.Http1ProtocolOptions
	corev3HttpOptions  = corev3.HttpProtocolOptions
)

const corev3DropHeader = corev3.HttpProtocolOptions_DROP_HEADER

type clusterv3Cluster = clusterv3.Cluster

const clusterv3RingHash = clusterv3.Cluster_RING_HASH

type (
	httpv3HttpProtocolOptions = httpv3.HttpProtocolOptions
	httpv3UseDownstream       = httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig
	httpv3UseDownstreamConfig = httpv3.HttpProtocolOptions_UseDownstreamHttpConfig
	corev3Http2Options        = corev3.Http2ProtocolOptions
)
