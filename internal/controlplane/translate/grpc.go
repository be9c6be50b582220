package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// buildGRPC emits what grpc-go's xDS client consumes (gRFC A27/A28): an
// api_listener per service:port under every name a client may dial
// (grpc-go requests LDS by its target), RDS with the VirtualService routes,
// EDS clusters with ROUND_ROBIN or ring hash, and their assignments.
// grpc-go does not implement the CORS filter, so routes carry only fault
// per-filter config, and the HCM lists fault then router.
func (b *builder) buildGRPC() {
	for _, svc := range b.services {
		if svc.Resolution != model.ClientSideLB {
			continue // grpc-go resolves EDS clusters only here
		}
		for _, p := range svc.Ports {
			b.outboundClusters(svc, p)
		}
	}
	for _, c := range b.clusters {
		grpcCluster(c)
	}
	for _, svc := range b.services {
		if svc.Resolution != model.ClientSideLB {
			continue
		}
		for _, p := range svc.Ports {
			b.grpcService(svc, p)
		}
	}
}

// grpcCluster trims a cluster to fields grpc-go accepts.
func grpcCluster(c *clusterv3.Cluster) {
	if c.LbPolicy == clusterv3.Cluster_MAGLEV {
		// grpc-go hashes with ring_hash only; same keys, same stickiness.
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(1024)}}
	}
	if c.LbPolicy != clusterv3.Cluster_RING_HASH {
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		c.LbConfig = nil
	}
	c.TypedExtensionProtocolOptions = nil
	c.TransportSocket = nil // grpc-go takes TLS only from certificate providers
	c.OutlierDetection = nil
	c.CommonLbConfig = nil
}

func (b *builder) grpcService(svc *model.Service, p *model.Port) {
	name := svc.Hostname + ":" + itoa(p.Number)
	routes := b.serviceRoutes(svc, p.Number)
	for _, r := range routes {
		grpcMissingDestinations(r)
		delete(r.TypedPerFilterConfig, filterCors)
		if len(r.TypedPerFilterConfig) == 0 {
			r.TypedPerFilterConfig = nil
		}
	}
	b.routes[name] = &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: b.domains(svc, p.Number, true, true),
			Routes:  routes,
		}},
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: name}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: filterFault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&faultv3.HTTPFault{})}},
			{Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})}},
		},
	}
	for _, ln := range b.domains(svc, p.Number, false, true) {
		b.listeners[ln] = &listenerv3.Listener{
			Name:        ln,
			ApiListener: &listenerv3.ApiListener{ApiListener: toAny(hcm)},
		}
	}
}

// grpcMissingDestinations replaces BlackHoleCluster (a destination Istio
// would send to a missing cluster), which proxyless clients do not get:
// weighted routes drop it, and a route left with no cluster answers 503,
// which grpc-go turns into an UNAVAILABLE RPC failure.
func grpcMissingDestinations(r *routev3.Route) {
	a := r.GetRoute()
	if a == nil {
		return
	}
	if wc := a.GetWeightedClusters(); wc != nil {
		var keep []*routev3.WeightedCluster_ClusterWeight
		for _, c := range wc.Clusters {
			if c.Name != blackholeCluster {
				keep = append(keep, c)
			}
		}
		switch len(keep) {
		case 0:
		case 1:
			a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: keep[0].Name}
			return
		default:
			wc.Clusters = keep
			return
		}
	} else if a.GetCluster() != blackholeCluster {
		return
	}
	r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 503}}
}
