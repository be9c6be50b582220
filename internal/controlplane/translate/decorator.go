package translate

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Route decorators name the spans of the requests a route serves, as
// Istio's do (pilot/pkg/networking/core/route/route.go GetRouteOperation,
// telemetry.TraceOperation): "<host>:<port><path>" where host and port
// are the single destination cluster's, else the VirtualService's name
// and the listener port, and path is the route's match ("/prefix*", an
// exact path, a regex, or "/*"). Inbound routes name the workload's own
// service and port, so server spans carry the destination service's name,
// never the caller's Host header.

// routeOperation is Istio's GetRouteOperation for a built route.
func routeOperation(r *routev3.Route, vsName string, port uint32) string {
	path := "/*"
	switch m := r.GetMatch(); {
	case m.GetPrefix() != "":
		path = m.GetPrefix() + "*"
	case m.GetPath() != "":
		path = m.GetPath()
	case m.GetSafeRegex() != nil:
		path = m.GetSafeRegex().GetRegex()
	}
	if c := r.GetRoute().GetCluster(); c != "" {
		if parts := strings.SplitN(c, "|", 4); len(parts) == 4 && parts[3] != "" {
			return parts[3] + ":" + parts[1] + path
		}
	}
	return vsName + ":" + itoa(port) + path
}

// decorate gives each route without a decorator Istio's operation.
func decorate(routes []*routev3.Route, vsName string, port uint32) {
	for _, r := range routes {
		if r != nil && r.Decorator == nil && r.GetRoute() != nil {
			r.Decorator = &routev3.Decorator{Operation: routeOperation(r, vsName, port)}
		}
	}
}

// decorateInbound names the inbound routes after the workload's service
// on that port (Istio's InstanceHostname and service port), when one
// selects it.
func (b *builder) decorateInbound() {
	for name, rc := range b.routes {
		if !strings.HasPrefix(name, "inbound|") {
			continue
		}
		parts := strings.Split(name, "|")
		if len(parts) < 2 {
			continue
		}
		target := parseUint32(parts[1])
		host, svcPort := b.inboundService(target)
		if host == "" {
			continue
		}
		op := host + ":" + itoa(svcPort) + "/*"
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if r.Decorator == nil && r.GetRoute() != nil {
					r.Decorator = &routev3.Decorator{Operation: op}
				}
			}
		}
	}
}

// inboundService is the first (by host) service with an endpoint at the
// proxy's IP on target port, and that service's port.
func (b *builder) inboundService(target uint32) (string, uint32) {
	for _, svc := range b.inboundServices(target) {
		for _, ep := range svc.Endpoints {
			if ep != nil && ep.Address == b.p.Meta.IP && ep.Port == target {
				return svc.Hostname, ep.ServicePort
			}
		}
	}
	return "", 0
}

func parseUint32(s string) uint32 {
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}
