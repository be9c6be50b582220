package translate

import (
	"net/netip"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

const (
	explicitProxyName = "explicit_http_proxy"
	vhostAllowAny     = "allow_any"
	vhostBlockAll     = "block_all"
)

// domainSet keeps domains unique within one route configuration (Envoy
// rejects a domain listed by two virtual hosts).
type domainSet map[string]bool

func (d domainSet) take(domains []string) []string {
	var out []string
	for _, x := range domains {
		if !d[x] {
			d[x] = true
			out = append(out, x)
		}
	}
	return out
}

// hostNames lists the names clients may use for svc from this proxy:
// the FQDN, and for Kubernetes names name.ns.svc and name.ns, plus the bare
// name from the same namespace (Istio's generateVirtualHostDomains).
func (b *builder) hostNames(svc *model.Service) []string {
	names := []string{svc.Hostname}
	suffix := ".svc." + b.domainSuffix()
	if strings.HasSuffix(svc.Hostname, suffix) {
		base := strings.TrimSuffix(svc.Hostname, "."+b.domainSuffix())
		parts := strings.Split(base, ".")
		if len(parts) == 3 {
			names = append(names, base, parts[0]+"."+parts[1])
			if parts[1] == b.p.Meta.Namespace {
				names = append(names, parts[0])
			}
		}
	}
	for _, a := range svc.Addresses {
		if ip := hostAddress(a); ip != "" {
			names = append(names, ip)
		}
	}
	return names
}

// hostAddress is the domain an address of a service stands for: the IP of
// "10.1.2.3" or a single-host CIDR ("10.1.2.3/32", as ServiceEntries write
// them). A wider range names no one host, so it is no domain (in capture
// mode its prefix still matches the listener's filter chain).
func hostAddress(a string) string {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.String()
	}
	p, err := netip.ParsePrefix(a)
	if err != nil || p.Bits() != p.Addr().BitLen() {
		return ""
	}
	return p.Addr().String()
}

// domains renders host names for a port: bare and/or "name:port".
func (b *builder) domains(svc *model.Service, port uint32, bare, qualified bool) []string {
	var out []string
	for _, n := range b.hostNames(svc) {
		if bare {
			out = append(out, n)
		}
		if qualified {
			out = append(out, n+":"+itoa(port))
		}
	}
	return out
}

// defaultRoute is Istio's route for a service without a VirtualService.
func (b *builder) defaultRoute(svc *model.Service, port uint32) *routev3.Route {
	name := clusterName("outbound", port, "", svc.Hostname)
	a := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
		Timeout:          dur(0),
		RetryPolicy:      b.retryPolicy(nil, false),
	}
	dr := b.destinationRule(svc.Hostname, svc.Namespace)
	a.HashPolicy = hashPolicy(effectivePolicy(dr.GetTrafficPolicy(), nil, port).lb)
	return &routev3.Route{
		Name:      "default",
		Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action:    &routev3.Route_Route{Route: a},
		Decorator: &routev3.Decorator{Operation: svc.Hostname + ":" + itoa(port) + "/*"},
	}
}

// serviceRoutes are the HTTP routes for one service port on a sidecar.
func (b *builder) serviceRoutes(svc *model.Service, port uint32) []*routev3.Route {
	if vs := b.sidecarVirtualService(svc.Hostname); vs != nil && len(vs.Spec.Http) > 0 {
		return b.httpRoutes(vs, routeScope{port: port})
	}
	return []*routev3.Route{b.defaultRoute(svc, port)}
}

// sidecarRouteConfig is the RDS config named by port: a virtual host per
// HTTP service port, then Istio's catch-all for unknown hosts.
func (b *builder) sidecarRouteConfig(port uint32) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: itoa(port)}
	seen := domainSet{}
	for _, svc := range b.outboundServices() {
		p := findPort(svc, port)
		if p == nil || !(portProtocol(p).isHTTP() || portProtocol(p) == protoAuto) {
			continue
		}
		doms := seen.take(b.domains(svc, port, true, true))
		if len(doms) == 0 {
			continue
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    svc.Hostname + ":" + itoa(port),
			Domains: doms,
			Routes:  b.serviceRoutes(svc, port),
		})
	}
	if len(seen.take([]string{"*"})) > 0 {
		rc.VirtualHosts = append(rc.VirtualHosts, b.catchAll(false))
	}
	return rc
}

// catchAll is Istio's virtual host for hosts not in the registry:
// allow_any → PassthroughCluster, block_all → 502 (REGISTRY_ONLY).
func (b *builder) catchAll(connect bool) *routev3.VirtualHost {
	prefix := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if !b.allowAny() {
		vh := &routev3.VirtualHost{Name: vhostBlockAll, Domains: []string{"*"}}
		if connect {
			vh.Routes = append(vh.Routes, &routev3.Route{Name: vhostBlockAll + "_connect", Match: connectMatch(), Action: blocked()})
		}
		vh.Routes = append(vh.Routes, &routev3.Route{Name: vhostBlockAll, Match: prefix, Action: blocked()})
		return vh
	}
	vh := &routev3.VirtualHost{Name: vhostAllowAny, Domains: []string{"*"}}
	if connect {
		vh.Routes = append(vh.Routes, &routev3.Route{Name: vhostAllowAny + "_connect", Match: connectMatch(), Action: &routev3.Route_Route{Route: connectAction(&routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: b.egressCluster()},
		})}})
	}
	vh.Routes = append(vh.Routes, &routev3.Route{Name: vhostAllowAny, Match: prefix, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: b.egressCluster()},
		Timeout:          dur(0),
	}}})
	return vh
}

func blocked() *routev3.Route_DirectResponse {
	return &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}}
}

func connectMatch() *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}}
}

// connectAction tunnels a CONNECT request to the route's cluster as TCP.
// weft-proxy terminates CONNECT on such routes (the proxy contract);
// Envoy itself would need upgrade_configs[].connect_config for that, which
// weft-proxy does not accept, so it is not emitted.
func connectAction(a *routev3.RouteAction) *routev3.RouteAction {
	a.UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "CONNECT"}}
	return a
}

// inboundRouteConfig is inbound|PORT||: every host to the local app.
func inboundRouteConfig(port uint32, cluster string) *routev3.RouteConfiguration {
	name := inboundClusterName(port)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound|http|" + itoa(port),
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          dur(0),
				}},
			}},
		}},
	}
}
