package translate

import (
	"math"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

const (
	passthroughCluster = "PassthroughCluster"
	blackholeCluster   = "BlackHoleCluster"
)

// clusterName is Istio's outbound cluster name: outbound|PORT|SUBSET|HOST.
func clusterName(dir string, port uint32, subset, host string) string {
	return dir + "|" + itoa(port) + "|" + subset + "|" + host
}

// inboundClusterName is Istio's inbound cluster name: inbound|PORT||.
func inboundClusterName(port uint32) string { return clusterName("inbound", port, "", "") }

func (b *builder) connectTimeout() time.Duration {
	if d := b.mesh.GetConnectTimeout(); d != nil && d.AsDuration() > 0 {
		return d.AsDuration()
	}
	return 10 * time.Second // Istio's mesh default
}

// defaultThresholds are Istio's: every limit effectively unlimited, so only
// a DestinationRule's connectionPool turns breakers on.
func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     u32(math.MaxUint32),
		MaxPendingRequests: u32(math.MaxUint32),
		MaxRequests:        u32(math.MaxUint32),
		MaxRetries:         u32(math.MaxUint32),
		TrackRemaining:     true,
	}
}

// buildClusters emits the outbound clusters (one per visible service port
// and per DestinationRule subset) plus PassthroughCluster and BlackHoleCluster.
func (b *builder) buildClusters() {
	for _, svc := range b.services {
		for _, port := range svc.Ports {
			b.outboundClusters(svc, port)
		}
	}
	b.addPassthrough(false)
	b.addBlackhole()
}

// outboundClusters adds the default cluster and the subset clusters for one
// service port.
func (b *builder) outboundClusters(svc *model.Service, port *model.Port) {
	dr := b.destinationRule(svc.Hostname, svc.Namespace)
	top := dr.GetTrafficPolicy()
	b.outboundCluster(svc, port, "", nil, effectivePolicy(top, nil, port.Number))
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() == "" {
			continue
		}
		b.outboundCluster(svc, port, ss.Name, ss.Labels, effectivePolicy(top, ss.TrafficPolicy, port.Number))
	}
}

func (b *builder) outboundCluster(svc *model.Service, port *model.Port, subset string, subsetLabels map[string]string, pol policy) {
	name := clusterName("outbound", port.Number, subset, svc.Hostname)
	c := &clusterv3.Cluster{
		Name:            name,
		ConnectTimeout:  dur(b.connectTimeout()),
		LbPolicy:        clusterv3.Cluster_LEAST_REQUEST, // Istio's default since 1.14
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{defaultThresholds()}},
		Metadata:        serviceMetadata(svc, subset),
	}
	resolution := svc.Resolution
	if pol.passthroughLB() {
		resolution = model.Passthrough
	}
	switch resolution {
	case model.ClientSideLB:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name}
		b.assignments[name] = b.assignment(name, svc, port, subsetLabels)
	case model.DNSLB, model.DNSRoundRobin:
		typ := clusterv3.Cluster_STRICT_DNS
		if resolution == model.DNSRoundRobin {
			typ = clusterv3.Cluster_LOGICAL_DNS
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: typ}
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
		c.RespectDnsTtl = true
		cla := b.assignment(name, svc, port, subsetLabels)
		if len(cla.Endpoints) == 0 && len(subsetLabels) == 0 {
			// A DNS ServiceEntry without endpoints resolves its own host.
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(svc.Hostname, port.Number)}}}
		}
		if typ == clusterv3.Cluster_LOGICAL_DNS {
			// Envoy requires exactly one host for LOGICAL_DNS.
			cla = firstEndpointOnly(cla)
		}
		c.LoadAssignment = cla
	case model.Passthrough:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	}
	b.applyPolicy(c, svc, port, subset, pol)
	if cla := b.assignments[name]; cla != nil {
		b.applyLocality(c, cla, pol)
	} else if c.LoadAssignment != nil {
		b.applyLocality(c, c.LoadAssignment, pol)
	}
	b.clusters[name] = c
}

// serviceMetadata is Istio's cluster metadata naming the service.
func serviceMetadata(svc *model.Service, subset string) *corev3.Metadata {
	f := map[string]*structpb.Value{"services": servicesValue([]*model.Service{svc})}
	if subset != "" {
		f["subset"] = str(subset)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: f}}}
}

// servicesValue is the istio.services list: one {host, name, namespace}
// per service.
func servicesValue(svcs []*model.Service) *structpb.Value {
	vals := make([]*structpb.Value, 0, len(svcs))
	for _, svc := range svcs {
		vals = append(vals, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host":      str(svc.Hostname),
			"name":      str(svc.Name),
			"namespace": str(svc.Namespace),
		}}))
	}
	return structpb.NewListValue(&structpb.ListValue{Values: vals})
}

// inboundServices are the proxy's services with an endpoint at the proxy's
// IP on target port port, sorted by host: the destination reporter names
// the service from the first (Istio's inbound cluster metadata).
func (b *builder) inboundServices(port uint32) []*model.Service {
	var out []*model.Service
	for _, svc := range b.p.Services {
		if svc == nil {
			continue
		}
		for _, ep := range svc.Endpoints {
			if ep != nil && ep.Address == b.p.Meta.IP && ep.Port == port && findPort(svc, ep.ServicePort) != nil {
				out = append(out, svc)
				break
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// addPassthrough adds PassthroughCluster: ORIGINAL_DST to where the client
// was going. In explicit mode there is no SO_ORIGINAL_DST, so the
// destination comes from the request's :authority (Envoy's
// original_dst_lb_config.use_http_header).
func (b *builder) addPassthrough(fromAuthority bool) {
	c := &clusterv3.Cluster{
		Name:                 passthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       dur(b.connectTimeout()),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		CircuitBreakers:      &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{defaultThresholds()}},
	}
	if fromAuthority {
		c.LbConfig = &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
			UseHttpHeader:  true,
			HttpHeaderName: ":authority",
		}}
	}
	b.clusters[passthroughCluster] = c
}

// addBlackhole adds BlackHoleCluster: a STATIC cluster with no hosts, so
// everything sent to it fails (REGISTRY_ONLY).
func (b *builder) addBlackhole() {
	b.clusters[blackholeCluster] = &clusterv3.Cluster{
		Name:                 blackholeCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       dur(b.connectTimeout()),
	}
}

// addInboundCluster adds inbound|PORT||: the local application.
func (b *builder) addInboundCluster(port uint32, proto protocol) string {
	name := inboundClusterName(port)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       dur(b.connectTimeout()),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		CircuitBreakers:      &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{defaultThresholds()}},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(b.appAddress(), port)},
			}},
		},
	}
	if proto == protoHTTP2 || proto == protoAuto {
		// h2 to the app for HTTP2/GRPC; sniffed ports keep the client's protocol.
		c.TypedExtensionProtocolOptions = protocolOptions(proto, nil)
	}
	b.applySidecarIngress(c, port, proto)
	if svcs := b.inboundServices(port); len(svcs) > 0 {
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"istio": {Fields: map[string]*structpb.Value{"services": servicesValue(svcs)}},
		}}
	}
	b.clusters[name] = c
	return name
}

func (b *builder) appAddress() string {
	if a := b.p.Meta.AppAddress; a != "" {
		return a
	}
	return "127.0.0.1"
}

// findPort returns the service port with number n.
func findPort(svc *model.Service, n uint32) *model.Port {
	if svc == nil {
		return nil
	}
	for _, p := range svc.Ports {
		if p != nil && p.Number == n {
			return p
		}
	}
	return nil
}

// hasSubset reports whether the DestinationRule for svc defines subset.
func (b *builder) hasSubset(svc *model.Service, subset string) bool {
	for _, ss := range b.destinationRule(svc.Hostname, svc.Namespace).GetSubsets() {
		if ss.GetName() == subset {
			return true
		}
	}
	return false
}
