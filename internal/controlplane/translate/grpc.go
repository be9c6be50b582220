package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

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
