package translate

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// A Sidecar egress listener with "bind: unix:///PATH" (or unix://@NAME, an
// abstract socket) and port number 0 is a listener on that unix domain
// socket, always bound whatever the captureMode, as Istio builds it
// (pilot/pkg/networking/core/listener.go buildSidecarOutboundListeners:
// bindToPort for a UDS bind; util.BuildAddress: address.pipe; listener
// "unix://PATH_0"). An HTTP listener routes by Host through the route
// configuration named after the bind, which holds every port of every
// service the listener imports (httproute.go BuildSidecarOutboundVirtualHosts
// with listener port 0: "host" and "host:port" domains, the first port
// taking the bare name) and the catch-all for other hosts. A TCP listener
// forwards to the single service port it imports; Istio's TCP
// destination on port 0 names no cluster, so with several it builds none.

const unixPrefix = "unix://"

func (b *builder) unixEgress(e *egressScope) {
	l := e.listener
	path := strings.TrimPrefix(l.Bind, unixPrefix)
	if path == "" {
		return // validation rejects it
	}
	name := l.Bind + "_0"
	if _, taken := b.listeners[name]; taken {
		return
	}
	out := &listenerv3.Listener{
		Name:    name,
		Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}},
	}
	proto := protocolOf(l.GetPort().GetProtocol())
	var hcm, tcp *listenerv3.Filter
	if proto.isHTTP() || proto == protoAuto {
		if _, ok := b.routes[l.Bind]; !ok {
			b.routes[l.Bind] = b.unixRouteConfig(l.Bind, e.services)
		}
		hcm = hcmFilter(hcmOptions{statPrefix: "outbound_" + name, rds: l.Bind})
	}
	if !proto.isHTTP() {
		if svc, p := b.soleServicePort(e.services); svc != nil {
			tcp = tcpFilter(b.tcpDestinations(svc, p))
		}
	}
	switch {
	case hcm != nil && tcp != nil:
		// No protocol: sniffed, as Istio's auto-detected listeners.
		out.ListenerFilters = listenerFilters("http_inspector")
		out.ContinueOnListenerFiltersTimeout = true
		out.FilterChains = []*listenerv3.FilterChain{
			{Name: name + "_http", FilterChainMatch: &listenerv3.FilterChainMatch{ApplicationProtocols: sniffedHTTP}, Filters: []*listenerv3.Filter{hcm}},
			{Name: name, Filters: []*listenerv3.Filter{tcp}},
		}
	case hcm != nil:
		out.FilterChains = []*listenerv3.FilterChain{{Name: name, Filters: []*listenerv3.Filter{hcm}}}
	case tcp != nil:
		out.FilterChains = []*listenerv3.FilterChain{{Name: name, Filters: []*listenerv3.Filter{tcp}}}
	default:
		return // a TCP listener with no single destination
	}
	b.listeners[name] = out
}

// unixRouteConfig is the route configuration of a UDS egress listener:
// every HTTP port of the imported services, then the catch-all.
func (b *builder) unixRouteConfig(name string, imported []*model.Service) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	seen := domainSet{}
	done := map[string]bool{}
	for _, s := range imported {
		svc := b.byHost[s.Hostname]
		if svc == nil || done[svc.Hostname] {
			continue
		}
		done[svc.Hostname] = true
		for _, p := range s.Ports {
			if pr := portProtocol(p); !pr.isHTTP() && pr != protoAuto {
				continue
			}
			doms := seen.take(b.domains(svc, p.Number, true, true))
			if len(doms) == 0 {
				continue
			}
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    svc.Hostname + ":" + itoa(p.Number),
				Domains: doms,
				Routes:  b.serviceRoutes(svc, p.Number),
			})
		}
	}
	if len(seen.take([]string{"*"})) > 0 {
		rc.VirtualHosts = append(rc.VirtualHosts, b.catchAll(false))
	}
	return rc
}

// soleServicePort is the one service port among imported, if exactly one.
func (b *builder) soleServicePort(imported []*model.Service) (*model.Service, *model.Port) {
	var svc *model.Service
	var port *model.Port
	for _, s := range imported {
		full := b.byHost[s.Hostname]
		if full == nil {
			continue
		}
		for _, p := range s.Ports {
			if svc != nil && (svc != full || port.Number != p.Number) {
				return nil, nil
			}
			svc, port = full, p
		}
	}
	return svc, port
}

// outboundServices are the services served on the captured and explicit
// outbound paths and the port route configurations: with a Sidecar, those
// its egress listeners import except the ones bound to a unix socket,
// whose services are reachable only there (Istio builds no port listener
// for them). Clusters still exist for every imported service.
func (b *builder) outboundServices() []*model.Service {
	if b.scope == nil {
		return b.services
	}
	if b.outbound != nil {
		return *b.outbound
	}
	ports := map[string]map[uint32]bool{}
	unixOnly := false
	for _, e := range b.scope.egress {
		l := e.listener
		if l.GetPort() != nil && l.GetPort().GetNumber() == 0 && strings.HasPrefix(l.Bind, unixPrefix) {
			unixOnly = true
			continue
		}
		for _, s := range e.services {
			if ports[s.Hostname] == nil {
				ports[s.Hostname] = map[uint32]bool{}
			}
			for _, p := range s.Ports {
				ports[s.Hostname][p.Number] = true
			}
		}
	}
	out := b.services
	if unixOnly {
		out = nil
		for _, svc := range b.services {
			if t := trimToPorts(svc, ports[svc.Hostname]); t != nil && len(ports[svc.Hostname]) > 0 {
				out = append(out, t)
			}
		}
	}
	b.outbound = &out
	return out
}
