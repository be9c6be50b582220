package translate

import (
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

func lbEndpoint(host string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: socketAddress(host, port),
	}}}
}

// assignment builds the ClusterLoadAssignment for one service port,
// keeping only endpoints whose labels match the subset. Endpoints are
// grouped by locality (sorted) and carry Istio's metadata: the workload
// ("name;namespace;canonical name;revision;cluster") and the tlsMode that
// transport_socket_matches select on.
//
// Unhealthy endpoints are left out, as Istio does by default
// (PILOT_SEND_UNHEALTHY_ENDPOINTS=false).
func (b *builder) assignment(name string, svc *model.Service, port *model.Port, subsetLabels map[string]string) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	groups := map[string]*endpointv3.LocalityLbEndpoints{}
	for _, ep := range svc.Endpoints {
		if ep == nil || ep.ServicePort != port.Number || !ep.Healthy || !labelsMatch(subsetLabels, ep.Labels) {
			continue
		}
		g := groups[ep.Locality]
		if g == nil {
			g = &endpointv3.LocalityLbEndpoints{Locality: locality(ep.Locality)}
			groups[ep.Locality] = g
		}
		le := lbEndpoint(ep.Address, ep.Port)
		w := ep.Weight
		if w == 0 {
			w = 1
		}
		le.LoadBalancingWeight = u32(w)
		le.HealthStatus = corev3.HealthStatus_HEALTHY
		le.Metadata = endpointMetadata(ep, b.endpointTLSMode(ep))
		b.endpointOf[le] = ep
		g.LbEndpoints = append(g.LbEndpoints, le)
	}
	for _, k := range sortedKeys(groups) {
		g := groups[k]
		sort.SliceStable(g.LbEndpoints, func(i, j int) bool {
			a, c := g.LbEndpoints[i].GetEndpoint().GetAddress().GetSocketAddress(), g.LbEndpoints[j].GetEndpoint().GetAddress().GetSocketAddress()
			if a.GetAddress() != c.GetAddress() {
				return a.GetAddress() < c.GetAddress()
			}
			return a.GetPortValue() < c.GetPortValue()
		})
		var sum uint32
		for _, le := range g.LbEndpoints {
			sum += le.GetLoadBalancingWeight().GetValue()
		}
		g.LoadBalancingWeight = u32(sum)
		cla.Endpoints = append(cla.Endpoints, g)
	}
	return cla
}

// locality parses "region/zone/subzone". An unknown locality is an empty
// Locality, never nil: grpc-go rejects an EDS group without a locality ID.
func locality(s string) *corev3.Locality {
	if s == "" {
		return &corev3.Locality{}
	}
	parts := strings.SplitN(s, "/", 3)
	l := &corev3.Locality{Region: parts[0]}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}

func endpointMetadata(ep *model.Endpoint, tlsMode string) *corev3.Metadata {
	if tlsMode == "" {
		tlsMode = "disabled"
	}
	canonical := ep.Labels["service.istio.io/canonical-name"]
	if canonical == "" {
		canonical = ep.Labels["app"]
	}
	if canonical == "" {
		canonical = ep.WorkloadName
	}
	revision := ep.Labels["service.istio.io/canonical-revision"]
	if revision == "" {
		revision = ep.Labels["version"]
	}
	if revision == "" {
		revision = "latest"
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": str(tlsMode)}},
	}}
	if ep.WorkloadName != "" {
		workload := strings.Join([]string{ep.WorkloadName, ep.Namespace, canonical, revision, ""}, ";")
		md.FilterMetadata["istio"] = &structpb.Struct{Fields: map[string]*structpb.Value{"workload": str(workload)}}
	}
	return md
}

// firstEndpointOnly keeps one host (LOGICAL_DNS takes exactly one).
func firstEndpointOnly(cla *endpointv3.ClusterLoadAssignment) *endpointv3.ClusterLoadAssignment {
	for _, g := range cla.Endpoints {
		if len(g.LbEndpoints) > 0 {
			g.LbEndpoints = g.LbEndpoints[:1]
			g.LoadBalancingWeight = g.LbEndpoints[0].GetLoadBalancingWeight()
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{g}
			return cla
		}
	}
	return cla
}
