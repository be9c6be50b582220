package translate

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// handSnapshot is a small mesh built without the loader or registry: two
// services, reviews with two versions, and a VirtualService splitting it.
func handSnapshot() (*model.Snapshot, *model.Proxy) {
	ep := func(ip, version string) *model.Endpoint {
		return &model.Endpoint{Address: ip, Port: 9080, ServicePort: 9080, Healthy: true, TLSMode: "istio",
			Labels: map[string]string{"app": "reviews", "version": version}, WorkloadName: "reviews-" + version, Namespace: "default"}
	}
	reviews := &model.Service{Hostname: "reviews.default.svc.cluster.local", Name: "reviews", Namespace: "default",
		Addresses: []string{"198.19.0.3"}, Ports: []*model.Port{{Name: "http", Number: 9080, Protocol: "HTTP"}},
		Endpoints: []*model.Endpoint{ep("198.18.0.21", "v1"), ep("198.18.0.22", "v2")}}
	db := &model.Service{Hostname: "db.default.svc.cluster.local", Name: "db", Namespace: "default",
		Addresses: []string{"198.19.0.9"}, Ports: []*model.Port{{Name: "tcp", Number: 5432, Protocol: "TCP"}}}
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}}
	dr.Spec.Host = "reviews"
	dr.Spec.Subsets = []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}}
	vs.Spec.Hosts = []string{"reviews"}
	vs.Spec.Http = []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
		{Destination: &networking.Destination{Host: "reviews", Subset: "v1"}, Weight: 75},
		{Destination: &networking.Destination{Host: "reviews", Subset: "v2"}, Weight: 25},
	}}}
	snap := &model.Snapshot{Services: []*model.Service{db, reviews},
		DestinationRules: []*networkingv1.DestinationRule{dr}, VirtualServices: []*networkingv1.VirtualService{vs}}
	meta := &node.Meta{Type: node.Sidecar, IP: "198.18.0.1", Name: "productpage-v1", Namespace: "default", Capture: true, AppAddress: "127.0.0.1",
		Labels: map[string]string{"app": "productpage"}, Ports: []node.Port{{Name: "http", Port: 9080, Protocol: "HTTP"}}}
	return snap, &model.Proxy{Meta: meta, ID: meta.ID()}
}

func TestBuildHandSnapshot(t *testing.T) {
	snap, p := handSnapshot()
	out := Build(snap, p)
	if err := out.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	var rc *routev3.RouteConfiguration
	for _, r := range out.Routes {
		if r.Name == "9080" {
			rc = r
		}
	}
	if rc == nil {
		t.Fatalf("no route config 9080 in %v", names(out))
	}
	wc := rc.VirtualHosts[0].Routes[0].GetRoute().GetWeightedClusters().GetClusters()
	if len(wc) != 2 || wc[0].Name != "outbound|9080|v1|reviews.default.svc.cluster.local" || wc[0].Weight.GetValue() != 75 ||
		wc[1].Name != "outbound|9080|v2|reviews.default.svc.cluster.local" || wc[1].Weight.GetValue() != 25 {
		t.Errorf("weighted clusters = %v", wc)
	}
	for _, e := range out.Endpoints {
		if e.ClusterName == "outbound|9080|v2|reviews.default.svc.cluster.local" {
			lbs := e.Endpoints[0].LbEndpoints
			if len(lbs) != 1 || lbs[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != "198.18.0.22" {
				t.Errorf("v2 assignment = %v", e)
			}
		}
	}
	// Pure: the input is not modified and a second build is identical.
	again := Build(snap, p)
	for i := range out.Clusters {
		if !proto.Equal(out.Clusters[i], again.Clusters[i]) {
			t.Errorf("cluster %s differs between builds", out.Clusters[i].Name)
		}
	}
}

func TestBuildNilInputs(t *testing.T) {
	if o := Build(nil, nil); o == nil || o.Check() != nil {
		t.Fatal("nil inputs must give an empty, valid output")
	}
	snap, p := handSnapshot()
	snap.Services = append(snap.Services, nil)
	snap.VirtualServices = append(snap.VirtualServices, nil)
	snap.DestinationRules = append(snap.DestinationRules, nil)
	snap.Gateways = append(snap.Gateways, nil)
	snap.Services[0].Ports = append(snap.Services[0].Ports, nil)
	snap.Services[1].Endpoints = append(snap.Services[1].Endpoints, nil)
	p.Services = []*model.Service{nil, snap.Services[1]}
	if err := Build(snap, p).Check(); err != nil {
		t.Fatalf("nil entries: %v", err)
	}
	p.Meta.Type = node.Router
	if err := Build(snap, p).Check(); err != nil {
		t.Fatalf("nil entries (router): %v", err)
	}
	p.Meta.Generator = "grpc"
	if err := Build(snap, p).Check(); err != nil {
		t.Fatalf("nil entries (grpc): %v", err)
	}
}

func names(o *Output) []string {
	var out []string
	for _, r := range o.Routes {
		out = append(out, "route:"+r.Name)
	}
	for _, l := range o.Listeners {
		out = append(out, "listener:"+l.Name)
	}
	return out
}

// checkMutation breaks a consistent output in one way Check must report.
type checkMutation struct {
	name   string
	mutate func(o *Output)
	want   string
}

func checkMutations() []checkMutation {
	return []checkMutation{
		{"route to missing cluster", func(o *Output) {
			o.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "nope"}
		}, `cluster "nope" does not exist`},
		{"EDS cluster without assignment", func(o *Output) { o.Endpoints = o.Endpoints[1:] }, "EDS without an assignment"},
		{"assignment without cluster", func(o *Output) {
			o.Endpoints = append(o.Endpoints, &endpointv3.ClusterLoadAssignment{ClusterName: "ghost"})
		}, `assignment "ghost": no EDS cluster`},
		{"missing RDS", func(o *Output) { o.Routes = nil }, `route config "9080" does not exist`},
		{"invalid cluster", func(o *Output) { o.Clusters[0].ConnectTimeout = dur(-1) }, "ConnectTimeout"},
		{"duplicate cluster", func(o *Output) { o.Clusters = append(o.Clusters, o.Clusters[0]) }, "defined twice"},
		{"tcp_proxy to missing cluster", func(o *Output) {
			o.Listeners = append(o.Listeners, &listenerv3.Listener{Name: "x", Address: socketAddress("0.0.0.0", 1),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpFilter([]weightedCluster{{"gone", 100}})}}}})
		}, `cluster "gone" does not exist`},
		{"invalid typed config", func(o *Output) {
			o.Clusters = append(o.Clusters, &clusterv3.Cluster{Name: "bad", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				TypedExtensionProtocolOptions: map[string]*anypb.Any{"x": nil}})
		}, "missing typed_config"},
		{"envoy conflicts", func(o *Output) {
			rc := o.Routes[0]
			rc.VirtualHosts = append(rc.VirtualHosts, proto.Clone(rc.VirtualHosts[0]).(*routev3.VirtualHost))
			o.Listeners = append(o.Listeners, &listenerv3.Listener{Name: "again", Address: o.Listeners[0].Address,
				FilterChains: o.Listeners[0].FilterChains})
		}, "both bind"},
	}
}

// mutatedOutput is the hand snapshot's output broken by m.
func mutatedOutput(t *testing.T, m checkMutation) *Output {
	t.Helper()
	snap, p := handSnapshot()
	out := Build(snap, p)
	if err := out.Check(); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	// Route config "9080" must come first for the mutations.
	for i, r := range out.Routes {
		if r.Name == "9080" {
			out.Routes[0], out.Routes[i] = out.Routes[i], out.Routes[0]
		}
	}
	m.mutate(out)
	return out
}

func TestCheckFindsInconsistencies(t *testing.T) {
	for _, tc := range checkMutations() {
		t.Run(tc.name, func(t *testing.T) {
			out := mutatedOutput(t, tc)
			err := out.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestGRPCClusterShapes pins what proxyless clients accept: ROUND_ROBIN or
// RING_HASH (maglev becomes ring hash), no transport socket or protocol
// options, and api_listeners for every name a client may dial.
func TestGRPCClusterShapes(t *testing.T) {
	snap, p := handSnapshot()
	dr := snap.DestinationRules[0]
	dr.Spec.TrafficPolicy = &networking.TrafficPolicy{
		LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{
			HashKey:       &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "x-user"},
			HashAlgorithm: &networking.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networking.LoadBalancerSettings_ConsistentHashLB_MagLev{TableSize: 65537}},
		}}},
		Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL},
	}
	p.Meta.Generator = "grpc"
	out := Build(snap, p)
	if err := out.Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range out.Clusters {
		if c.LbPolicy != clusterv3.Cluster_ROUND_ROBIN && c.LbPolicy != clusterv3.Cluster_RING_HASH {
			t.Errorf("cluster %s: lb_policy %v", c.Name, c.LbPolicy)
		}
		if c.TransportSocket != nil || c.TypedExtensionProtocolOptions != nil {
			t.Errorf("cluster %s: transport socket or protocol options for a proxyless client", c.Name)
		}
	}
	want := map[string]bool{"reviews.default.svc.cluster.local:9080": false, "reviews:9080": false, "198.19.0.3:9080": false}
	for _, l := range out.Listeners {
		if _, ok := want[l.Name]; ok {
			want[l.Name] = true
		}
		if l.ApiListener == nil {
			t.Errorf("listener %s: no api_listener", l.Name)
		}
	}
	for n, seen := range want {
		if !seen {
			t.Errorf("no listener %s", n)
		}
	}
}

// TestNilConfigEntries: YAML like `http: [null]` decodes to nil entries;
// translation skips them instead of crashing, in every role.
func TestNilConfigEntries(t *testing.T) {
	snap, p := handSnapshot()
	vs := snap.VirtualServices[0]
	vs.Spec.Gateways = []string{"mesh", "default/gw"}
	vs.Spec.Http = append(vs.Spec.Http, nil, &networking.HTTPRoute{
		Match:   []*networking.HTTPMatchRequest{nil},
		Route:   []*networking.HTTPRouteDestination{nil, {Destination: &networking.Destination{Host: "reviews"}, Weight: 100}},
		Mirrors: []*networking.HTTPMirrorPolicy{nil},
	})
	vs.Spec.Tcp = []*networking.TCPRoute{nil, {Match: []*networking.L4MatchAttributes{nil}, Route: []*networking.RouteDestination{nil}}}
	vs.Spec.Tls = []*networking.TLSRoute{nil, {Match: []*networking.TLSMatchAttributes{nil}, Route: []*networking.RouteDestination{nil}}}
	vs.Spec.Hosts = append(vs.Spec.Hosts, "db")
	snap.DestinationRules[0].Spec.TrafficPolicy = &networking.TrafficPolicy{PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{nil}}
	snap.DestinationRules[0].Spec.Subsets = append(snap.DestinationRules[0].Spec.Subsets, nil)
	gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}}
	gw.Spec.Servers = []*networking.Server{nil, {Port: &networking.Port{Number: 443, Protocol: "TLS"}, Hosts: []string{"*"}}, {Port: &networking.Port{Number: 31400, Protocol: "TCP"}, Hosts: []string{"*"}}}
	snap.Gateways = []*networkingv1.Gateway{gw}
	for _, mode := range []func(){
		func() {},
		func() { p.Meta.Capture = false; p.Meta.ProxyPort = 15080 },
		func() { p.Meta.Type = node.Router },
		func() { p.Meta.Type, p.Meta.Generator = node.Sidecar, "grpc" },
	} {
		mode()
		if err := Build(snap, p).Check(); err != nil {
			t.Errorf("%+v: %v", p.Meta, err)
		}
	}
}

func TestCheckFindsEnvoyConflicts(t *testing.T) {
	snap, p := handSnapshot()
	out := Build(snap, p)
	rc := out.Routes[0]
	rc.VirtualHosts = append(rc.VirtualHosts, proto.Clone(rc.VirtualHosts[0]).(*routev3.VirtualHost))
	out.Listeners = append(out.Listeners, &listenerv3.Listener{Name: "again", Address: out.Listeners[0].Address,
		FilterChains: out.Listeners[0].FilterChains})
	err := out.Check()
	for _, want := range []string{"defined twice", "domain", "both bind"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check() = %v, want it to report %q", err, want)
		}
	}
}
