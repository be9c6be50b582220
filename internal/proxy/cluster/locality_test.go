package cluster

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's effective locality weight (locality_weight.rst): X (weight 1)
// with half its hosts healthy has availability min(100, 140 × 50%) = 70%,
// so its effective weight is 0.7 against Y's 2: X takes 7/27 of requests
// (Envoy's table: 26%), not the 1/5 a plain healthy share would give.
func TestLocalityWeightOverprovisioned(t *testing.T) {
	x1, xdown, y := newBackend(t), newBackend(t), newBackend(t)
	xs := []*endpointv3.LbEndpoint{lbEndpoint(x1.addr()), lbEndpoint(xdown.addr())}
	xs[1].HealthStatus = corev3.HealthStatus_UNHEALTHY
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: &corev3.Locality{Region: "r", Zone: "x"}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: xs},
		{Locality: &corev3.Locality{Region: "r", Zone: "y"}, LoadBalancingWeight: wrapperspb.UInt32(2),
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(y.addr())}},
	}}
	pc := edsCluster("c")
	pc.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
		LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}}
	s := build(t, nil, []*clusterv3.Cluster{pc}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	defer s.Close()
	got := served(t, s.Get("c"), 270)
	if got[xdown.addr()] != 0 || got[x1.addr()] != 70 || got[y.addr()] != 200 {
		t.Fatalf("want X 70, Y 200 of 270, got %v", got)
	}
}

// Istio's locality failover: priority 0 (the client's zone) takes all
// traffic while healthy; once outlier detection ejects it, priority 1 (the
// failover region) takes over, not the other region at priority 2.
func TestLocalityFailoverOrder(t *testing.T) {
	local, failover, other := newBackend(t), newBackend(t), newBackend(t)
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: &corev3.Locality{Region: "region1", Zone: "zone1"}, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(local.addr())}},
		{Locality: &corev3.Locality{Region: "region3"}, Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(failover.addr())}},
		{Locality: &corev3.Locality{Region: "region2"}, Priority: 2, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(other.addr())}},
	}}
	unhealthy := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	unhealthy.Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_UNHEALTHY
	s := build(t, nil, []*clusterv3.Cluster{edsCluster("c")}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	if got := served(t, s.Get("c"), 10); got[local.addr()] != 10 {
		t.Fatalf("priority 0 should take everything: %v", got)
	}
	s2 := build(t, s, []*clusterv3.Cluster{edsCluster("c")}, map[string]*endpointv3.ClusterLoadAssignment{"c": unhealthy}, Options{})
	s.Close()
	defer s2.Close()
	if got := served(t, s2.Get("c"), 10); got[failover.addr()] != 10 {
		t.Fatalf("priority 1 should take everything once priority 0 is down: %v", got)
	}
}
