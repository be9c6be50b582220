package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// builder holds one translation's inputs, indexes and outputs. It lives for
// one Build call.
type builder struct {
	snap *model.Snapshot
	p    *model.Proxy
	mesh *meshv1alpha1.MeshConfig

	// services visible to the proxy (Istio exportTo), by hostname order.
	services []*model.Service
	byHost   map[string]*model.Service

	listeners   map[string]*listenerv3.Listener
	routes      map[string]*routev3.RouteConfiguration
	clusters    map[string]*clusterv3.Cluster
	assignments map[string]*endpointv3.ClusterLoadAssignment
	secrets     map[string]*tlsv3.Secret

	// Config in Istio's precedence order, computed once per build.
	vsCache  *[]*networkingv1.VirtualService
	outbound *[]*model.Service // outboundServices, once computed
	drIndex  *drIndex
	drByHost map[string]*networking.DestinationRule // host|namespace → rule (nil: none)
	peer     *PeerPolicy                            // the proxy's PeerAuthentication, once computed
	pas      []*securityv1.PeerAuthentication       // the snapshot's, oldest first (endpoint tlsMode)

	// endpointOf maps each emitted LbEndpoint to its registry endpoint
	// (failoverPriority matches on the endpoint's labels).
	endpointOf map[*endpointv3.LbEndpoint]*model.Endpoint

	// scope is the Sidecar resource that applies to the proxy (nil: none).
	scope *sidecarScope

	// noteCredential, when set (CredentialProblems), hears of every
	// DestinationRule credentialName a cluster names but cannot be served.
	noteCredential func(cluster, credential string, ca bool)
}

func newBuilder(snap *model.Snapshot, p *model.Proxy) *builder {
	b := newProxyBuilder(snap, p)
	if b.scope != nil {
		var candidates []*model.Service
		for _, s := range snap.Services {
			if s != nil && exportedTo(s.ExportTo, s.Namespace, p.Meta.Namespace) {
				candidates = append(candidates, s)
			}
		}
		b.applySidecarScope(candidates)
		return b
	}
	for _, s := range snap.Services {
		if s == nil || !exportedTo(s.ExportTo, s.Namespace, p.Meta.Namespace) {
			continue
		}
		if _, dup := b.byHost[s.Hostname]; dup {
			continue // first source wins, as Istio does for duplicate hosts
		}
		s = usablePorts(s)
		b.services = append(b.services, s)
		b.byHost[s.Hostname] = s
	}
	return b
}

// newProxyBuilder is a builder without the visible services: enough for
// the proxy's own inbound side, which never looks at other services.
func newProxyBuilder(snap *model.Snapshot, p *model.Proxy) *builder {
	b := &builder{
		snap:        snap,
		p:           p,
		mesh:        snap.Mesh,
		byHost:      map[string]*model.Service{},
		listeners:   map[string]*listenerv3.Listener{},
		routes:      map[string]*routev3.RouteConfiguration{},
		clusters:    map[string]*clusterv3.Cluster{},
		assignments: map[string]*endpointv3.ClusterLoadAssignment{},
		secrets:     map[string]*tlsv3.Secret{},
		drByHost:    map[string]*networking.DestinationRule{},
		endpointOf:  map[*endpointv3.LbEndpoint]*model.Endpoint{},
	}
	if b.mesh == nil {
		b.mesh = &meshv1alpha1.MeshConfig{}
	}
	if sc := selectSidecar(snap, p.Meta, b.rootNamespace()); sc != nil {
		b.scope = newSidecarScope(sc, p.Meta.Namespace)
	}
	return b
}

// allowAny reports whether unknown destinations pass through: the
// Sidecar's outboundTrafficPolicy, else the mesh's (default ALLOW_ANY).
func (b *builder) allowAny() bool {
	if mode, ok := b.scope.outboundPolicy(); ok {
		return mode != networking.OutboundTrafficPolicy_REGISTRY_ONLY
	}
	return b.mesh.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
}

// egressCluster is where unmatched outbound traffic goes under ALLOW_ANY:
// the Sidecar's outboundTrafficPolicy.egressProxy when set (Istio's
// buildCatchAllVirtualHost and buildOutboundCatchAllNetworkFiltersOnly:
// route.GetDestinationCluster with the host as written, the destination's
// port and subset), else PassthroughCluster. Istio names that cluster even
// when the proxy has none (the Sidecar does not import the host), and the
// proxy answers 503 NC or closes the connection; BlackHoleCluster fails
// the same way here while keeping every referenced cluster defined.
func (b *builder) egressCluster() string {
	if b.scope == nil || b.scope.sidecar == nil {
		return passthroughCluster
	}
	tp := b.scope.sidecar.Spec.OutboundTrafficPolicy
	ep := tp.GetEgressProxy()
	if ep == nil || ep.GetHost() == "" || tp.GetMode() != networking.OutboundTrafficPolicy_ALLOW_ANY {
		return passthroughCluster
	}
	name := clusterName("outbound", ep.GetPort().GetNumber(), ep.GetSubset(), ep.GetHost())
	if _, ok := b.clusters[name]; !ok {
		return blackholeCluster
	}
	return name
}

// rootNamespace is where mesh-wide config lives (Istio: istio-system).
func (b *builder) rootNamespace() string {
	if ns := b.mesh.GetRootNamespace(); ns != "" {
		return ns
	}
	return "istio-system"
}

// domainSuffix is the cluster DNS domain used to expand short host names.
func (b *builder) domainSuffix() string { return "cluster.local" }

// usablePorts returns svc, or a shallow copy keeping only ports that can
// be translated (not nil, 1-65535); the snapshot itself is never modified.
func usablePorts(svc *model.Service) *model.Service {
	for _, p := range svc.Ports {
		if !validPort(p) {
			c := *svc
			c.Ports = nil
			for _, p := range svc.Ports {
				if validPort(p) {
					c.Ports = append(c.Ports, p)
				}
			}
			return &c
		}
	}
	return svc
}

func validPort(p *model.Port) bool { return p != nil && p.Number > 0 && p.Number <= 65535 }
