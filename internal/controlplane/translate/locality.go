package translate

import (
	"math"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// Locality load balancing follows Istio
// (pilot/pkg/networking/core/loadbalancer/loadbalancer.go):
//
//   - The setting is the DestinationRule's localityLbSetting (after the
//     subset and port merge), else the mesh's (enabled by default); a
//     setting with enabled: false turns it off.
//   - distribute: the first entry whose "from" matches the client's
//     locality weights the endpoint groups matching each "to" (a group's
//     share split by the groups' own weights); groups matching no "to"
//     get no endpoints.
//   - Otherwise, only when the cluster has outlier detection (without it
//     Envoy would never fail over): failoverPriority splits groups by how
//     many of the listed labels match the client's, then priorities follow
//     the locality: same region/zone/subzone 0, same zone 1, same region
//     2, else 3, or 4 when a failover rule for the client's region names
//     another region. Priorities are then renumbered 0..N.
//   - locality_weighted_lb_config is set when distribute is used, or when
//     failover or failoverPriority is in effect.

// localitySetting is the effective setting for a cluster's policy.
func (b *builder) localitySetting(pol policy) *networking.LocalityLoadBalancerSetting {
	s := pol.lb.GetLocalityLbSetting()
	if s == nil {
		s = b.mesh.GetLocalityLbSetting()
	}
	if s == nil || (s.GetEnabled() != nil && !s.GetEnabled().GetValue()) {
		return nil
	}
	return s
}

// applyLocality applies the locality setting to cla (the assignment of
// cluster c) for this proxy.
func (b *builder) applyLocality(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment, pol policy) {
	s := b.localitySetting(pol)
	if s == nil || cla == nil {
		return
	}
	failover := c.OutlierDetection != nil
	if s.GetDistribute() != nil || (failover && (len(s.GetFailover()) > 0 || len(s.GetFailoverPriority()) > 0)) {
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
		}
	}
	client := node.ParseLocality(b.p.Meta.Locality)
	switch {
	case s.GetDistribute() != nil:
		distributeWeights(client, cla, s.GetDistribute())
	case failover:
		if len(s.GetFailoverPriority()) > 0 {
			b.failoverPriorities(cla, s.GetFailoverPriority())
			if len(s.GetFailover()) > 0 {
				localityFailover(client, cla, s.GetFailover())
			}
		} else {
			localityFailover(client, cla, s.GetFailover())
		}
	}
}

// localityMatch reports whether l matches a rule locality "region/zone/
// subzone" where "*" or a missing part matches anything.
func localityMatch(l *corev3.Locality, rule string) bool {
	parts := strings.SplitN(rule, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	r, z, sz := parts[0], parts[1], parts[2]
	return (r == "*" || l.GetRegion() == r) &&
		(z == "*" || z == "" || l.GetZone() == z) &&
		(sz == "*" || sz == "" || l.GetSubZone() == sz)
}

func distributeWeights(client *corev3.Locality, cla *endpointv3.ClusterLoadAssignment, rules []*networking.LocalityLoadBalancerSetting_Distribute) {
	for _, rule := range rules {
		if rule == nil || !localityMatch(client, rule.From) {
			continue
		}
		unmatched := map[int]bool{}
		for i := range cla.Endpoints {
			unmatched[i] = true
		}
		// Istio walks "to" in map order; sorted keys make it deterministic.
		tos := make([]string, 0, len(rule.To))
		for k := range rule.To {
			tos = append(tos, k)
		}
		sort.Strings(tos)
		for _, to := range tos {
			weight := rule.To[to]
			orig := map[int]uint32{}
			var total uint32
			for i, g := range cla.Endpoints {
				if !unmatched[i] || !localityMatch(g.Locality, to) {
					continue
				}
				delete(unmatched, i)
				w := uint32(1)
				if g.LoadBalancingWeight != nil {
					w = g.LoadBalancingWeight.GetValue()
				}
				orig[i] = w
				total += w
			}
			for i, w := range orig {
				if dw := float64(w*weight) / float64(total); dw > 0 {
					cla.Endpoints[i].LoadBalancingWeight = u32(uint32(math.Ceil(dw)))
				}
			}
		}
		for i := range unmatched {
			cla.Endpoints[i].LbEndpoints = nil
		}
		return
	}
}

// lbPriority is Istio's util.LbPriority: how far an endpoint group's
// locality is from the client's.
func lbPriority(client, ep *corev3.Locality) int {
	switch {
	case client.GetRegion() != ep.GetRegion():
		return 3
	case client.GetZone() != ep.GetZone():
		return 2
	case client.GetSubZone() != ep.GetSubZone():
		return 1
	}
	return 0
}

func localityFailover(client *corev3.Locality, cla *endpointv3.ClusterLoadAssignment, rules []*networking.LocalityLoadBalancerSetting_Failover) {
	for _, g := range cla.Endpoints {
		p := lbPriority(client, g.Locality)
		if p == 3 {
			for _, r := range rules {
				if r.GetFrom() == client.GetRegion() {
					if g.Locality.GetRegion() != r.GetTo() {
						p = 4
					}
					break
				}
			}
		}
		// Keep the order failoverPriority gave: five locality levels per level.
		g.Priority = g.Priority*5 + uint32(p)
	}
	renumber(cla.Endpoints)
}

// renumber makes priorities contiguous from 0, keeping their order.
func renumber(gs []*endpointv3.LocalityLbEndpoints) {
	seen := map[uint32]bool{}
	var ps []uint32
	for _, g := range gs {
		if !seen[g.Priority] {
			seen[g.Priority] = true
			ps = append(ps, g.Priority)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	to := map[uint32]uint32{}
	for i, p := range ps {
		to[p] = uint32(i)
	}
	for _, g := range gs {
		g.Priority = to[g.Priority]
	}
}

// failoverPriorities splits each locality group by how many of the listed
// labels ("label" or "label=value") the endpoint shares with the client,
// in order: all match is priority 0, the first mismatch at label j gives
// len-j. A leading topology.istio.io/network mismatch only demotes.
func (b *builder) failoverPriorities(cla *endpointv3.ClusterLoadAssignment, labels []string) {
	client := endpointLabels(&model.Endpoint{Labels: b.p.Meta.Labels, Network: b.p.Meta.Network, Locality: b.p.Meta.Locality})
	if len(client) == 0 || len(cla.Endpoints) == 0 {
		return
	}
	names := make([]string, len(labels))
	override := map[string]string{}
	for i, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		names[i] = k
		if ok {
			override[k] = v
		}
	}
	lowest := len(labels)
	withNetwork := lowest > 0 && names[0] == "topology.istio.io/network"
	var out []*endpointv3.LocalityLbEndpoints
	for _, g := range cla.Endpoints {
		byPrio := map[int][]*endpointv3.LbEndpoint{}
		for _, le := range g.LbEndpoints {
			ep := b.endpointOf[le]
			var epLabels map[string]string
			if ep != nil {
				epLabels = endpointLabels(ep)
			}
			prio, adjust := 0, 0
			for j, name := range names {
				want, ok := override[name]
				if !ok {
					want = client[name]
				}
				if want != epLabels[name] {
					if j == 0 && withNetwork {
						adjust = lowest
						continue
					}
					prio = lowest - j
					break
				}
			}
			prio += adjust
			byPrio[prio] = append(byPrio[prio], le)
		}
		prios := make([]int, 0, len(byPrio))
		for p := range byPrio {
			prios = append(prios, p)
		}
		sort.Ints(prios)
		for _, p := range prios {
			ng := proto.Clone(g).(*endpointv3.LocalityLbEndpoints)
			ng.LbEndpoints = byPrio[p]
			ng.Priority = uint32(p)
			var w uint32
			for _, le := range ng.LbEndpoints {
				w += le.GetLoadBalancingWeight().GetValue()
			}
			ng.LoadBalancingWeight = u32(w)
			out = append(out, ng)
		}
	}
	renumber(out)
	cla.Endpoints = out
}

// endpointLabels are an endpoint's (or the client's) labels as Istio sees
// them for failoverPriority: its own, plus the network and locality labels
// Istio adds to every workload (labelutil.AugmentLabels).
func endpointLabels(ep *model.Endpoint) map[string]string {
	out := make(map[string]string, len(ep.Labels)+4)
	for k, v := range ep.Labels {
		out[k] = v
	}
	if ep.Network != "" {
		out["topology.istio.io/network"] = ep.Network
	}
	if ep.Locality != "" {
		l := node.ParseLocality(ep.Locality)
		if l.Region != "" {
			out[node.LabelRegion] = l.Region
		}
		if l.Zone != "" {
			out[node.LabelZone] = l.Zone
		}
		if l.SubZone != "" {
			out[node.LabelSubzone] = l.SubZone
		}
	}
	return out
}
