package xds

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// fakeTranslate gives one EDS cluster and assignment per service port, so
// the server can be tested without the real translator.
func fakeTranslate(snap *model.Snapshot, _ *model.Proxy) *translate.Output {
	out := &translate.Output{}
	for _, s := range snap.Services {
		for _, p := range s.Ports {
			name := fmt.Sprintf("outbound|%d||%s", p.Number, s.Hostname)
			out.Clusters = append(out.Clusters, &clusterv3.Cluster{
				Name:                 name,
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			})
			cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
			var lb []*endpointv3.LbEndpoint
			for _, e := range s.Endpoints {
				lb = append(lb, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: e.Address, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port}}}}}}})
			}
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lb}}
			out.Endpoints = append(out.Endpoints, cla)
		}
	}
	return out
}

func snapshot(addrs ...string) *model.Snapshot {
	s := &model.Service{Hostname: "reviews.default.svc.cluster.local", Name: "reviews", Namespace: "default",
		Ports: []*model.Port{{Name: "http", Number: 9080, Protocol: "HTTP"}}}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, &model.Endpoint{Address: a, Port: 9080, ServicePort: 9080, Healthy: true})
	}
	snap := emptySnapshot()
	snap.Services = []*model.Service{s}
	return snap
}

type testServer struct {
	*Server
	addr string
	mu   sync.Mutex
	conn []string
	disc []string
}

func startServer(t *testing.T, snap *model.Snapshot) *testServer {
	t.Helper()
	return startServerWith(t, snap, fakeTranslate)
}

func startServerWith(t *testing.T, snap *model.Snapshot, tr func(*model.Snapshot, *model.Proxy) *translate.Output) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.Server = New(snap, Options{
		Debounce:     10 * time.Millisecond,
		Translate:    tr,
		OnConnect:    func(id string, _ uint64, _ *node.Meta) { ts.mu.Lock(); ts.conn = append(ts.conn, id); ts.mu.Unlock() },
		OnDisconnect: func(id string, _ uint64) { ts.mu.Lock(); ts.disc = append(ts.disc, id); ts.mu.Unlock() },
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(GRPCOptions()...)
	ts.Register(g)
	go g.Serve(lis)
	t.Cleanup(func() { g.Stop(); ts.Close() })
	ts.addr = lis.Addr().String()
	return ts
}

func meta(name string) *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: name, Namespace: "default", Labels: map[string]string{"app": name}}
}

func waitStatus(t *testing.T, s *Server, id string, cond func(ProxyStatus) bool) ProxyStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last ProxyStatus
	for time.Now().Before(deadline) {
		for _, ps := range s.Status() {
			if ps.ID == id {
				last = ps
				if cond(ps) {
					return ps
				}
			}
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	t.Fatalf("status of %s never reached the condition; last: %+v", id, last)
	return last
}

func synced(types ...string) func(ProxyStatus) bool {
	return func(ps ProxyStatus) bool {
		for _, t := range types {
			if ps.Types[t].State != Synced {
				return false
			}
		}
		return true
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPushAndEndpointOnlyChange(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%t", delta), func(t *testing.T) {
			s := startServer(t, snapshot("10.0.0.1"))
			m := meta("productpage")
			c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{Delta: delta})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.WaitFor(ctx(t), func(c *meshtest.XDSClient) bool {
				return len(c.Resources(resource.EndpointType)) == 1 && len(c.Resources(resource.ClusterType)) == 1
			}); err != nil {
				t.Fatal(err)
			}
			ps := waitStatus(t, s.Server, m.ID(), synced("CDS", "EDS", "LDS", "RDS"))
			if ps.Workload != "productpage.default" || ps.Delta != delta {
				t.Errorf("status = %+v", ps)
			}
			cdsAcks, _ := c.Counts(resource.ClusterType)
			cdsVersion := c.Version(resource.ClusterType)

			// An endpoint-only change: EDS moves, CDS does not.
			s.Update(snapshot("10.0.0.1", "10.0.0.2"))
			if err := c.WaitFor(ctx(t), func(c *meshtest.XDSClient) bool {
				cla, ok := c.Resources(resource.EndpointType)["outbound|9080||reviews.default.svc.cluster.local"].(*endpointv3.ClusterLoadAssignment)
				return ok && len(cla.GetEndpoints()[0].GetLbEndpoints()) == 2
			}); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, s.Server, m.ID(), synced("CDS", "EDS"))
			if acks, _ := c.Counts(resource.ClusterType); acks != cdsAcks || c.Version(resource.ClusterType) != cdsVersion {
				t.Errorf("CDS was re-sent on an endpoint-only change: acks %d→%d", cdsAcks, acks)
			}
			// An identical snapshot pushes nothing at all.
			before := s.Metrics().Pushes("EDS")
			s.Update(snapshot("10.0.0.1", "10.0.0.2"))
			s.Flush()
			if after := s.Metrics().Pushes("EDS"); after != before {
				t.Errorf("identical snapshot re-pushed EDS (%d→%d)", before, after)
			}
			if s.metrics.convergence.Count() == 0 {
				t.Errorf("no convergence observed")
			}
		})
	}
}

func TestNACKIsTrackedAndCleared(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%t", delta), func(t *testing.T) {
			s := startServer(t, snapshot("10.0.0.1"))
			m := meta("ratings")
			reject := func(typeURL string, _ map[string]proto.Message) string {
				if typeURL == resource.ClusterType {
					return "cluster outbound|9080||reviews.default.svc.cluster.local: unsupported lb_policy"
				}
				return ""
			}
			c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{Delta: delta, Reject: reject})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// EDS is ACKed independently of the CDS NACK (maybe later).
			ps := waitStatus(t, s.Server, m.ID(), func(ps ProxyStatus) bool {
				return ps.Types["CDS"].State == NACK && ps.Types["EDS"].State == Synced
			})
			if !strings.Contains(ps.Types["CDS"].NACK, "unsupported lb_policy") {
				t.Errorf("status = %+v", ps.Types)
			}
			var b strings.Builder
			s.Metrics().WriteTo(&b)
			if !strings.Contains(b.String(), `weft_xds_nacks_total{type="CDS"} 1`) {
				t.Errorf("metrics lack the NACK:\n%s", b.String())
			}
			// The proxy accepts the next version: NACK clears.
			c.SetReject(nil)
			s.Update(snapshot("10.0.0.1", "10.0.0.3"))
			s.Update(func() *model.Snapshot {
				snap := snapshot("10.0.0.1", "10.0.0.3")
				snap.Services[0].Ports = append(snap.Services[0].Ports, &model.Port{Name: "grpc", Number: 9090})
				return snap
			}())
			waitStatus(t, s.Server, m.ID(), synced("CDS", "EDS"))
		})
	}
}

func TestConnectDisconnectAndDump(t *testing.T) {
	s := startServer(t, snapshot("10.0.0.1"))
	m := meta("details")
	c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s.Server, m.ID(), synced("CDS"))
	if id, err := s.FindProxy("details.default"); err != nil || id != m.ID() {
		t.Errorf("FindProxy = %q, %v", id, err)
	}
	if _, err := s.FindProxy("nope"); err == nil {
		t.Errorf("FindProxy(nope) succeeded")
	}
	var mb strings.Builder
	s.Metrics().WriteTo(&mb)
	if !strings.Contains(mb.String(), "weft_xds_connected_proxies 1\n") {
		t.Errorf("connected gauge:\n%s", mb.String())
	}
	dump, err := s.ConfigDump(m.ID())
	if err != nil || len(dump.GetConfigs()) != 5 {
		t.Fatalf("dump = %v, %v", dump, err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Status()) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.mu.Lock()
	conn, disc := append([]string(nil), s.conn...), append([]string(nil), s.disc...)
	s.mu.Unlock()
	if len(s.Status()) != 0 || len(conn) != 1 || len(disc) != 1 || conn[0] != m.ID() {
		t.Errorf("status=%d connects=%v disconnects=%v", len(s.Status()), conn, disc)
	}
	mb.Reset()
	s.Metrics().WriteTo(&mb)
	if !strings.Contains(mb.String(), "weft_xds_connected_proxies 0\n") {
		t.Errorf("connected gauge after disconnect:\n%s", mb.String())
	}
}

func TestBadNodeRejected(t *testing.T) {
	s := startServer(t, snapshot())
	c, err := meshtest.DialXDSNode(s.addr, &corev3.Node{Id: "not-a-node-id"}, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.WaitFor(ctx(t), func(c *meshtest.XDSClient) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "invalid node") {
		t.Fatalf("err = %v, want the stream closed with invalid node", err)
	}
}

func TestTranslatePanicDoesNotPublish(t *testing.T) {
	s := New(snapshot(), Options{Translate: func(*model.Snapshot, *model.Proxy) *translate.Output { panic("boom") }})
	defer s.Close()
	p := &proxyState{id: "x", meta: meta("x"), versions: map[string]string{}, changeAt: map[string]time.Time{}, types: map[string]*typeState{}}
	s.push(s.gen, p, time.Now())
	if !strings.Contains(p.checkErr, "boom") || p.lists != nil {
		t.Fatalf("checkErr=%q lists=%v", p.checkErr, p.lists)
	}
}

func TestCheckFailureIsNotPublished(t *testing.T) {
	good := true
	var mu sync.Mutex
	s := startServerWith(t, snapshot("10.0.0.1"), func(snap *model.Snapshot, p *model.Proxy) *translate.Output {
		out := fakeTranslate(snap, p)
		mu.Lock()
		defer mu.Unlock()
		if !good {
			// A route to a cluster that does not exist fails Output.Check.
			out.Routes = append(out.Routes, &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
				Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|1||missing"}}},
				}},
			}}})
		}
		return out
	})
	m := meta("checked")
	c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitStatus(t, s.Server, m.ID(), synced("CDS", "EDS"))
	mu.Lock()
	good = false
	mu.Unlock()
	s.Update(snapshot("10.0.0.1", "10.0.0.5"))
	s.Flush()
	ps := waitStatus(t, s.Server, m.ID(), func(ps ProxyStatus) bool { return ps.CheckError != "" })
	if !strings.Contains(ps.CheckError, "missing") {
		t.Errorf("check error = %q", ps.CheckError)
	}
	if cla := c.Resources(resource.EndpointType)["outbound|9080||reviews.default.svc.cluster.local"].(*endpointv3.ClusterLoadAssignment); len(cla.GetEndpoints()[0].GetLbEndpoints()) != 1 {
		t.Errorf("a translation failing the check was published")
	}
}

func TestDeltaSendsOnlyChangedResources(t *testing.T) {
	two := func(reviews ...string) *model.Snapshot {
		snap := snapshot(reviews...)
		snap.Services = append(snap.Services, &model.Service{Hostname: "ratings.default.svc.cluster.local", Name: "ratings", Namespace: "default",
			Ports:     []*model.Port{{Name: "http", Number: 9080}},
			Endpoints: []*model.Endpoint{{Address: "10.0.1.1", Port: 9080, ServicePort: 9080}}})
		return snap
	}
	s := startServer(t, two("10.0.0.1"))
	m := meta("delta")
	c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitFor(ctx(t), func(c *meshtest.XDSClient) bool { return len(c.Resources(resource.EndpointType)) == 2 }); err != nil {
		t.Fatal(err)
	}
	v := c.Version(resource.EndpointType)
	s.Update(two("10.0.0.1", "10.0.0.2"))
	if err := c.WaitFor(ctx(t), func(c *meshtest.XDSClient) bool { return c.Version(resource.EndpointType) != v }); err != nil {
		t.Fatal(err)
	}
	if n := c.LastResponseSize(resource.EndpointType); n != 1 {
		t.Errorf("delta EDS update carried %d resources, want only the changed one", n)
	}
	if len(c.Resources(resource.EndpointType)) != 2 {
		t.Errorf("client lost the unchanged assignment")
	}
}

func TestIdenticalResourcesAreShared(t *testing.T) {
	s := startServer(t, snapshot("10.0.0.1"))
	var clients []*meshtest.XDSClient
	for _, name := range []string{"a", "b", "c"} {
		m := meta(name)
		c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		waitStatus(t, s.Server, m.ID(), synced("CDS", "EDS"))
	}
	// fakeTranslate gives every proxy one cluster and one assignment.
	if n := s.intern.size(); n != 2 {
		t.Errorf("interner holds %d resources for 3 identical proxies, want 2", n)
	}
	a, _ := s.Output(meta("a").ID())
	b, _ := s.Output(meta("b").ID())
	if a.Clusters[0] != b.Clusters[0] {
		t.Errorf("identical clusters are not shared")
	}
	for _, c := range clients {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.intern.size() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	if n := s.intern.size(); n != 0 {
		t.Errorf("interner holds %d resources after every proxy left", n)
	}
}
