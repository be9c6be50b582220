package translate

import (
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// gatewayServer is one Gateway server bound to this router.
type gatewayServer struct {
	gw     *networkingv1.Gateway
	name   string // "ns/name"
	server *networking.Server
}

// gatewayListed reports whether any of a VS's gateway references names
// one of the router's gateways ("ns/name", or "name" in the VS namespace
// already resolved by the caller).
func gatewayListed(refs, gateways []string) bool {
	for _, r := range refs {
		for _, g := range gateways {
			if r == g {
				return true
			}
		}
	}
	return false
}

// resolveGateways qualifies short gateway names with the VS namespace.
func resolveGateways(refs []string, ns string) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		if r != "mesh" && !strings.Contains(r, "/") {
			r = ns + "/" + r
		}
		out = append(out, r)
	}
	return out
}

// routerGateways are the Gateways whose selector matches this router. With
// PILOT_SCOPE_GATEWAY_TO_NAMESPACE off (Istio's default) a Gateway in any
// namespace may select it.
func (b *builder) routerGateways() []*networkingv1.Gateway {
	var out []*networkingv1.Gateway
	for _, gw := range b.snap.Gateways {
		if gw != nil && labelsMatch(gw.Spec.Selector, b.p.Meta.Labels) {
			out = append(out, gw)
		}
	}
	return byCreation(out, func(g *networkingv1.Gateway) *metav1.ObjectMeta { return &g.ObjectMeta })
}

// targetPort maps a server port through the Service that selects this
// router (istio-ingressgateway 80 → 8080); unmapped ports stay as they are.
func (b *builder) targetPort(n uint32) uint32 {
	for _, svc := range b.p.Services {
		if p := findPort(svc, n); p != nil && p.TargetPort != 0 {
			return p.TargetPort
		}
	}
	return n
}

// splitServerHost parses a Gateway server host "ns/host" (ns "*" or ".").
func splitServerHost(h, gwNS string) (ns, host string) {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		return "*", h
	}
	if ns == "." {
		ns = gwNS
	}
	return ns, host
}

// boundVirtualServices are VirtualServices bound to gateway name, in order.
func (b *builder) boundVirtualServices(name string) []*networkingv1.VirtualService {
	var out []*networkingv1.VirtualService
	for _, vs := range b.virtualServices() {
		if gatewayListed(resolveGateways(vs.Spec.Gateways, vs.Namespace), []string{name}) {
			out = append(out, vs)
		}
	}
	return out
}

// vsHostsFor returns, for each host of vs that intersects the server hosts
// (respecting the ns/ restriction), the virtual host name to use: the more
// specific of the two patterns.
func (b *builder) vsHostsFor(vs *networkingv1.VirtualService, gs gatewayServer) []string {
	var out []string
	for _, sh := range gs.server.Hosts {
		ns, host := splitServerHost(sh, gs.gw.Namespace)
		if ns != "*" && ns != vs.Namespace {
			continue
		}
		for _, h := range vs.Spec.Hosts {
			h = b.resolveHost(h, vs.Namespace)
			switch {
			case hostMatches(host, h):
				out = append(out, h)
			case hostMatches(h, host):
				out = append(out, host)
			}
		}
	}
	return out
}

// buildGateway emits a listener per (target) port for the router's
// Gateway servers.
func (b *builder) buildGateway() {
	byPort := map[uint32][]gatewayServer{}
	var ports []uint32
	for _, gw := range b.routerGateways() {
		name := gw.Namespace + "/" + gw.Name
		for _, s := range gw.Spec.Servers {
			if s == nil {
				continue
			}
			if s.GetPort() == nil || s.Port.Number == 0 || s.Port.Number > 65535 {
				continue
			}
			tp := b.targetPort(s.Port.Number)
			if tp > 65535 {
				continue
			}
			if _, ok := byPort[tp]; !ok {
				ports = append(ports, tp)
			}
			byPort[tp] = append(byPort[tp], gatewayServer{gw, name, s})
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	bind := "0.0.0.0"
	if !b.p.Meta.Capture && b.p.Meta.IP != "" {
		bind = b.p.Meta.IP
	}
	for _, port := range ports {
		l := &listenerv3.Listener{Name: "0.0.0.0_" + itoa(port), Address: socketAddress(bind, port)}
		var cs chainSet
		var httpServers []gatewayServer
		tlsSeen := false
		for _, gs := range byPort[port] {
			proto := strings.ToUpper(gs.server.Port.Protocol)
			mode := gs.server.GetTls().GetMode()
			switch {
			case (proto == "HTTPS" || proto == "TLS") && mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH:
				tlsSeen = true
				b.autoPassthroughChains(&cs, gs, port)
			case (proto == "HTTPS" || proto == "TLS") && mode == networking.ServerTLSSettings_PASSTHROUGH:
				tlsSeen = true
				b.passthroughChains(&cs, gs, port)
			case proto == "HTTPS" || (proto == "TLS" && gs.server.Tls != nil):
				tlsSeen = true
				b.httpsChain(&cs, gs, port)
			case proto == "TCP" || proto == "TLS" || proto == "MONGO" || proto == "REDIS" || proto == "MYSQL":
				b.gatewayTCPChain(&cs, gs)
			default: // HTTP, HTTP2, GRPC share one route config per port
				httpServers = append(httpServers, gs)
			}
		}
		if len(httpServers) > 0 {
			rc := b.gatewayRouteConfig("http."+itoa(port), httpServers)
			b.routes[rc.Name] = rc
			cs.add(&listenerv3.FilterChain{Name: "http." + itoa(port), Filters: []*listenerv3.Filter{
				hcmFilter(hcmOptions{statPrefix: "outbound_0.0.0.0_" + itoa(port), rds: rc.Name, gateway: true}),
			}})
		}
		if len(cs.chains) == 0 {
			continue
		}
		if tlsSeen {
			l.ListenerFilters = listenerFilters("tls_inspector")
			l.ContinueOnListenerFiltersTimeout = true
		}
		l.FilterChains = cs.chains
		b.listeners[l.Name] = l
	}
}

// gatewayRouteConfig merges the VirtualServices bound to the servers into
// one virtual host per host, as Istio does for gateways (routes of several
// VirtualServices for one host are concatenated, oldest first). No match →
// Envoy's 404 (NR).
func (b *builder) gatewayRouteConfig(name string, servers []gatewayServer) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	vhosts := map[string]*routev3.VirtualHost{}
	var order []string
	add := func(host string, port uint32, routes []*routev3.Route) {
		vh := vhosts[host]
		if vh == nil {
			vh = &routev3.VirtualHost{Name: host + ":" + itoa(port), Domains: gatewayDomains(host, port)}
			vhosts[host] = vh
			order = append(order, host)
		}
		vh.Routes = append(vh.Routes, routes...)
	}
	for _, gs := range servers {
		port := gs.server.Port.Number
		if gs.server.GetTls().GetHttpsRedirect() {
			for _, sh := range gs.server.Hosts {
				_, host := splitServerHost(sh, gs.gw.Namespace)
				if _, ok := vhosts[host]; !ok {
					add(host, port, []*routev3.Route{httpsRedirect()})
				}
			}
			continue
		}
		scope := routeScope{port: port, gateways: []string{gs.name}}
		for _, vs := range b.boundVirtualServices(gs.name) {
			hosts := b.vsHostsFor(vs, gs)
			if len(hosts) == 0 {
				continue
			}
			routes := b.httpRoutes(vs, scope)
			for _, h := range hosts {
				add(h, port, routes)
			}
		}
	}
	seen := domainSet{}
	for _, h := range order {
		vh := vhosts[h]
		vh.Domains = seen.take(vh.Domains)
		if len(vh.Domains) > 0 {
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	return rc
}

// gatewayDomains: the host with and without any port (Istio before
// ignore_port_in_host_matching, which weft-proxy does not implement).
// Envoy allows one wildcard per domain, so a wildcard host gets the
// server's port instead of ":*", as Istio did.
func gatewayDomains(host string, port uint32) []string {
	switch {
	case host == "*":
		return []string{"*"}
	case strings.HasPrefix(host, "*"):
		return []string{host, host + ":" + itoa(port)}
	}
	return []string{host, host + ":*"}
}

// httpsRedirect answers every plaintext request with a 301 to https (the
// effect of Istio's require_tls on a plaintext listener).
func httpsRedirect() *routev3.Route {
	return &routev3.Route{
		Name:  "https_redirect",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
			ResponseCode:           routev3.RedirectAction_MOVED_PERMANENTLY,
		}},
	}
}

// serverNames are a server's hosts as SNI names ("*" matches any SNI).
func serverNames(gs gatewayServer) []string {
	var out []string
	for _, sh := range gs.server.Hosts {
		_, h := splitServerHost(sh, gs.gw.Namespace)
		if h == "*" {
			return nil
		}
		out = append(out, h)
	}
	return out
}

// httpsChain terminates TLS for one server and routes with its own route
// config https.PORT.PORTNAME.GATEWAY.NAMESPACE (Istio's name).
//
// A server whose credentialName secret this router may not read (it is
// missing, or lives in another namespace) gets no filter chain: its
// handshakes fail, and the listener's other servers keep working instead of
// the whole listener waiting for a secret that never comes.
func (b *builder) httpsChain(cs *chainSet, gs gatewayServer, port uint32) {
	if t := gs.server.GetTls(); t.GetCredentialName() != "" {
		mutual := t.GetMode() == networking.ServerTLSSettings_MUTUAL || t.GetMode() == networking.ServerTLSSettings_OPTIONAL_MUTUAL
		if !b.hasSecret(t.CredentialName, false) || (mutual && !b.hasSecret(t.CredentialName, true)) {
			return
		}
	}
	rcName := "https." + itoa(gs.server.Port.Number) + "." + gs.server.Port.Name + "." + gs.gw.Name + "." + gs.gw.Namespace
	rc := b.gatewayRouteConfig(rcName, []gatewayServer{gs})
	b.routes[rc.Name] = rc
	cs.add(&listenerv3.FilterChain{
		Name:             rcName,
		FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: serverNames(gs), TransportProtocol: "tls"},
		TransportSocket:  b.downstreamTLS(gs.server.Tls, []string{"h2", "http/1.1"}),
		Filters: []*listenerv3.Filter{
			hcmFilter(hcmOptions{statPrefix: "outbound_0.0.0.0_" + itoa(port), rds: rc.Name, gateway: true}),
		},
	})
}

// passthroughChains route TLS by SNI without terminating it, using the
// tls routes of bound VirtualServices.
func (b *builder) passthroughChains(cs *chainSet, gs gatewayServer, port uint32) {
	for _, vs := range b.boundVirtualServices(gs.name) {
		if len(b.vsHostsFor(vs, gs)) == 0 {
			continue
		}
		for _, tr := range vs.Spec.Tls {
			if tr == nil {
				continue
			}
			for _, m := range tr.Match {
				if m == nil {
					continue
				}
				if m.Port != 0 && m.Port != gs.server.Port.Number {
					continue
				}
				if len(m.Gateways) > 0 && !gatewayListed(resolveGateways(m.Gateways, vs.Namespace), []string{gs.name}) {
					continue
				}
				dests := b.routeDestinations(tr.Route, vs.Namespace, 0)
				if len(dests) == 0 {
					continue
				}
				var sni []string
				for _, h := range m.SniHosts {
					sni = append(sni, b.resolveHost(h, vs.Namespace))
				}
				cs.add(&listenerv3.FilterChain{
					Name:             "passthrough." + itoa(port) + "." + strings.Join(sni, ","),
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: sni, TransportProtocol: "tls"},
					Filters:          []*listenerv3.Filter{tcpFilter(dests)},
				})
			}
		}
	}
}

// gatewayTCPChain forwards a TCP server with the first applicable tcp route
// of the bound VirtualServices.
func (b *builder) gatewayTCPChain(cs *chainSet, gs gatewayServer) {
	for _, vs := range b.boundVirtualServices(gs.name) {
		if len(b.vsHostsFor(vs, gs)) == 0 {
			continue
		}
		for _, tr := range vs.Spec.Tcp {
			if tr == nil {
				continue
			}
			applies := len(tr.Match) == 0
			for _, m := range tr.Match {
				if m == nil {
					continue
				}
				if (m.Port == 0 || m.Port == gs.server.Port.Number) &&
					(len(m.Gateways) == 0 || gatewayListed(resolveGateways(m.Gateways, vs.Namespace), []string{gs.name})) {
					applies = true
				}
			}
			if !applies {
				continue
			}
			if dests := b.routeDestinations(tr.Route, vs.Namespace, 0); len(dests) > 0 {
				cs.add(&listenerv3.FilterChain{Name: "tcp." + itoa(gs.server.Port.Number), Filters: []*listenerv3.Filter{tcpFilter(dests)}})
				return
			}
		}
	}
}

// autoPassthroughChains route by Istio's mTLS SNI
// (outbound_.PORT_.SUBSET_.HOST) without terminating TLS: one chain per
// cluster whose service matches the server hosts, to Istio's SNI-named
// cluster of the same name. That cluster has the outbound cluster's
// endpoints but never a transport socket: the client's TLS passes as it
// is (the outbound cluster itself may originate the gateway's own mutual
// TLS, which would wrap the client's TLS in a second layer that the
// workload's sidecar unwraps and hands to the app).
func (b *builder) autoPassthroughChains(cs *chainSet, gs gatewayServer, port uint32) {
	for _, svc := range b.services {
		if !serverCovers(gs, svc) {
			continue
		}
		for _, p := range svc.Ports {
			subsets := []string{""}
			for _, ss := range b.destinationRule(svc.Hostname, svc.Namespace).GetSubsets() {
				if ss.GetName() != "" {
					subsets = append(subsets, ss.Name)
				}
			}
			for _, sub := range subsets {
				src, ok := b.clusters[clusterName("outbound", p.Number, sub, svc.Hostname)]
				if !ok {
					continue
				}
				sni := istioSNI(p.Number, sub, svc.Hostname)
				if _, ok := b.clusters[sni]; !ok {
					c := proto.Clone(src).(*clusterv3.Cluster)
					c.Name, c.TransportSocket, c.TransportSocketMatches = sni, nil, nil
					if eds := c.GetEdsClusterConfig(); eds != nil && eds.ServiceName == "" {
						eds.ServiceName = src.Name
					}
					b.clusters[sni] = c
				}
				cs.add(&listenerv3.FilterChain{
					Name:             "auto_passthrough." + itoa(port) + "." + sni,
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{sni}, TransportProtocol: "tls"},
					Filters:          []*listenerv3.Filter{tcpFilter([]weightedCluster{{sni, 100}})},
				})
			}
		}
	}
}

// serverCovers reports whether a server's hosts (with ns/ restriction)
// include the service.
func serverCovers(gs gatewayServer, svc *model.Service) bool {
	for _, sh := range gs.server.Hosts {
		ns, host := splitServerHost(sh, gs.gw.Namespace)
		if (ns == "*" || ns == svc.Namespace) && hostMatches(host, svc.Hostname) {
			return true
		}
	}
	return false
}
