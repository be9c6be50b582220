package translate

import (
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

const (
	virtualOutbound     = "virtualOutbound"
	virtualInbound      = "virtualInbound"
	virtualOutboundPort = 15001
	virtualInboundPort  = 15006
)

// inboundPort is one port the proxy's workload serves.
type inboundPort struct {
	port  uint32
	proto protocol
}

// inboundPorts are the workload's target ports: a Sidecar's ingress
// listeners when it has some, else those of the services that select it
// (their endpoints at the proxy's IP), then the ports it announced
// itself. Sorted by port.
func (b *builder) inboundPorts() []inboundPort {
	if ports, ok := b.sidecarIngressPorts(); ok {
		return ports
	}
	seen := map[uint32]protocol{}
	for _, svc := range b.p.Services {
		if svc == nil {
			continue
		}
		for _, ep := range svc.Endpoints {
			if ep == nil || ep.Address != b.p.Meta.IP {
				continue
			}
			if ep.Port == 0 || ep.Port > 65535 {
				continue
			}
			if sp := findPort(svc, ep.ServicePort); sp != nil {
				if _, ok := seen[ep.Port]; !ok {
					seen[ep.Port] = portProtocol(sp)
				}
			}
		}
	}
	for _, mp := range b.p.Meta.Ports {
		if _, ok := seen[mp.Port]; !ok && mp.Port != 0 && mp.Port <= 65535 {
			seen[mp.Port] = portProtocol(&model.Port{Name: mp.Name, Protocol: mp.Protocol})
		}
	}
	var out []inboundPort
	for p, pr := range seen {
		out = append(out, inboundPort{p, pr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// inboundChains are the filter chains serving one workload port; match is
// applied to each (capture: destination_port; explicit: none).
func (b *builder) inboundChains(ip inboundPort, match func() *listenerv3.FilterChainMatch) []*listenerv3.FilterChain {
	tlsSettings, terminated := b.ingressTLS(ip.port)
	if tlsSettings != nil {
		ip.proto = terminated
	}
	cluster := b.addInboundCluster(ip.port, ip.proto)
	name := "inbound_0.0.0.0_" + itoa(ip.port)
	httpChain := func(mtls bool) *listenerv3.FilterChain {
		rc := inboundRouteConfig(ip.port, cluster)
		b.routes[rc.Name] = rc
		return &listenerv3.FilterChain{Name: name, FilterChainMatch: match(), Filters: []*listenerv3.Filter{
			hcmFilter(hcmOptions{statPrefix: name, rds: rc.Name, inboundMTLS: mtls}),
		}}
	}
	tcpChain := func() *listenerv3.FilterChain {
		return &listenerv3.FilterChain{Name: name, FilterChainMatch: match(), Filters: []*listenerv3.Filter{
			tcpFilter([]weightedCluster{{cluster, 100}}),
		}}
	}
	if tlsSettings != nil {
		fc := tcpChain()
		if ip.proto.isHTTP() {
			fc = httpChain(false)
		}
		if fc.FilterChainMatch == nil {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{}
		}
		fc.FilterChainMatch.TransportProtocol = "tls"
		fc.TransportSocket = b.downstreamTLS(tlsSettings, []string{"h2", "http/1.1"})
		return []*listenerv3.FilterChain{fc}
	}
	if mode := b.inboundMode(ip.port); mode != MTLSDisable {
		return b.securedInboundChains(mode, ip, match, httpChain, tcpChain)
	}
	switch {
	case ip.proto.isHTTP():
		return []*listenerv3.FilterChain{httpChain(false)}
	case ip.proto == protoAuto:
		h := httpChain(false)
		h.Name += "_http"
		if h.FilterChainMatch == nil {
			h.FilterChainMatch = &listenerv3.FilterChainMatch{}
		}
		h.FilterChainMatch.ApplicationProtocols = sniffedHTTP
		return []*listenerv3.FilterChain{h, tcpChain()}
	}
	return []*listenerv3.FilterChain{tcpChain()}
}

// bindIP is where explicit-mode listeners bind: the workload IP (any
// address if the proxy announced none).
func (b *builder) bindIP() string {
	if b.p.Meta.IP == "" {
		return "0.0.0.0"
	}
	return b.p.Meta.IP
}

// buildInbound emits virtualInbound (capture) or one listener per workload
// port bound at the workload IP (explicit).
func (b *builder) buildInbound() {
	ports := b.inboundPorts()
	if b.p.Meta.Capture {
		if len(ports) == 0 {
			return // a listener needs a filter chain; nothing to serve
		}
		l := &listenerv3.Listener{
			Name:             virtualInbound,
			Address:          socketAddress("0.0.0.0", virtualInboundPort),
			TrafficDirection: corev3.TrafficDirection_INBOUND,
			ListenerFilters:  listenerFilters("original_dst", "tls_inspector", "http_inspector"),
			// Istio: a client that sends nothing before the detection
			// timeout (server-first protocols) is not cut off.
			ContinueOnListenerFiltersTimeout: true,
		}
		for _, ip := range ports {
			port := ip.port
			if bind, ok := b.ingressBound(port); ok {
				// Sidecar ingress captureMode NONE: a real listener.
				b.boundInbound(ip, bind)
				continue
			}
			l.FilterChains = append(l.FilterChains, b.inboundChains(ip, func() *listenerv3.FilterChainMatch {
				return &listenerv3.FilterChainMatch{DestinationPort: u32(port)}
			})...)
		}
		if len(l.FilterChains) > 0 {
			b.listeners[l.Name] = l
		}
		return
	}
	for _, ip := range ports {
		if ip.port == b.p.Meta.ProxyPort {
			continue // the explicit proxy owns that address
		}
		bind, ok := b.ingressBound(ip.port)
		if !ok {
			bind = b.bindIP()
		}
		b.boundInbound(ip, bind)
	}
}

// boundInbound is an inbound listener bound to bind:port (explicit mode,
// or a Sidecar ingress listener with captureMode NONE), its chains told
// apart by sniffing rather than by original destination.
func (b *builder) boundInbound(ip inboundPort, bind string) {
	name := bind + "_" + itoa(ip.port)
	if _, taken := b.listeners[name]; taken {
		return
	}
	// INBOUND, as Istio marks its inbound listeners: the proxy's
	// drain_listeners?inboundonly (the native sidecar's preStop) finds them.
	l := &listenerv3.Listener{Name: name, Address: socketAddress(bind, ip.port), TrafficDirection: corev3.TrafficDirection_INBOUND}
	chains := b.inboundChains(ip, func() *listenerv3.FilterChainMatch { return nil })
	if len(chains) == 0 {
		return // STRICT without a certificate: the port is closed
	}
	if t, _ := b.ingressTLS(ip.port); t != nil {
		l.ListenerFilters = listenerFilters("tls_inspector")
		l.ContinueOnListenerFiltersTimeout = true
		l.FilterChains = chains
	} else if b.inboundMode(ip.port) != MTLSDisable {
		// Mutual TLS told apart from plaintext (and HTTP from TCP on
		// sniffed ports) by the chains' matches, as virtualInbound does.
		l.ListenerFilters = listenerFilters("tls_inspector")
		if ip.proto == protoAuto {
			l.ListenerFilters = listenerFilters("tls_inspector", "http_inspector")
		}
		l.ContinueOnListenerFiltersTimeout = true
		l.FilterChains = chains
	} else if ip.proto == protoAuto {
		l.ListenerFilters = listenerFilters("http_inspector")
		l.ContinueOnListenerFiltersTimeout = true
		l.FilterChains = chains[:1]
		l.DefaultFilterChain = chains[1]
	} else {
		l.FilterChains = chains
	}
	b.listeners[name] = l
}

// chainSet collects outbound filter chains, keeping the first of any two
// with the same match (Envoy rejects duplicates; Istio keeps the first).
type chainSet struct {
	keys   map[string]bool
	chains []*listenerv3.FilterChain
}

func (c *chainSet) add(fc *listenerv3.FilterChain) {
	if c.keys == nil {
		c.keys = map[string]bool{}
	}
	k := fc.GetFilterChainMatch().String()
	if c.keys[k] {
		return
	}
	c.keys[k] = true
	c.chains = append(c.chains, fc)
}

// buildCaptureOutbound emits virtualOutbound: HTTP ports through an HCM
// with RDS by port, TCP ports by VIP and port through tcp_proxy, TLS ports
// by SNI, and unknown destinations to PassthroughCluster or BlackHoleCluster.
func (b *builder) buildCaptureOutbound() {
	var cs chainSet
	rds := map[uint32]string{}
	routeConfig := func(port uint32) string {
		if n, ok := rds[port]; ok {
			return n
		}
		rc := b.sidecarRouteConfig(port)
		b.routes[rc.Name] = rc
		rds[port] = rc.Name
		return rc.Name
	}
	httpChain := func(name string, m *listenerv3.FilterChainMatch, port uint32) *listenerv3.FilterChain {
		return &listenerv3.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listenerv3.Filter{
			hcmFilter(hcmOptions{statPrefix: "outbound_0.0.0.0_" + itoa(port), rds: routeConfig(port)}),
		}}
	}
	for _, svc := range b.outboundServices() {
		for _, p := range svc.Ports {
			switch pr := portProtocol(p); {
			case pr.isHTTP():
				// Any destination IP: the route config picks the service by Host.
				cs.add(httpChain("0.0.0.0_"+itoa(p.Number), &listenerv3.FilterChainMatch{DestinationPort: u32(p.Number)}, p.Number))
			case pr == protoTLS:
				b.tlsChains(&cs, svc, p)
			case pr == protoAuto:
				// Sniffed: an HTTP chain and a TCP chain with the same
				// destination match, told apart by http_inspector's result.
				// They share the match because Envoy compares destination IP
				// before application protocols.
				dests := b.tcpDestinations(svc, p)
				for _, m := range vipMatches(svc, p.Number) {
					hm := proto.Clone(m).(*listenerv3.FilterChainMatch)
					hm.ApplicationProtocols = sniffedHTTP
					cs.add(httpChain(chainName(m, p.Number)+"_http", hm, p.Number))
					cs.add(&listenerv3.FilterChain{Name: chainName(m, p.Number), FilterChainMatch: m, Filters: []*listenerv3.Filter{tcpFilter(dests)}})
				}
			default:
				dests := b.tcpDestinations(svc, p)
				for _, m := range vipMatches(svc, p.Number) {
					cs.add(&listenerv3.FilterChain{Name: chainName(m, p.Number), FilterChainMatch: m, Filters: []*listenerv3.Filter{tcpFilter(dests)}})
				}
			}
		}
	}
	def := b.egressCluster()
	if !b.allowAny() {
		def = blackholeCluster
	}
	sort.SliceStable(cs.chains, func(i, j int) bool { return cs.chains[i].Name < cs.chains[j].Name })
	b.listeners[virtualOutbound] = &listenerv3.Listener{
		Name:                             virtualOutbound,
		Address:                          socketAddress("0.0.0.0", virtualOutboundPort),
		UseOriginalDst:                   wrapperspb.Bool(true),
		ListenerFilters:                  listenerFilters("original_dst", "tls_inspector", "http_inspector"),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     cs.chains,
		DefaultFilterChain:               &listenerv3.FilterChain{Name: def, Filters: []*listenerv3.Filter{tcpFilter([]weightedCluster{{def, 100}})}},
	}
}

// vipMatches matches a service port by its VIPs, or by port alone when the
// service has none (Istio's 0.0.0.0_PORT).
func vipMatches(svc *model.Service, port uint32) []*listenerv3.FilterChainMatch {
	var ranges []*listenerv3.FilterChainMatch
	m := &listenerv3.FilterChainMatch{DestinationPort: u32(port)}
	for _, a := range svc.Addresses {
		if c := cidr(a); c != nil {
			m.PrefixRanges = append(m.PrefixRanges, c)
		}
	}
	return append(ranges, m)
}

func chainName(m *listenerv3.FilterChainMatch, port uint32) string {
	if len(m.PrefixRanges) == 0 {
		return "0.0.0.0_" + itoa(port)
	}
	return m.PrefixRanges[0].AddressPrefix + "_" + itoa(port)
}

// tcpDestinations applies the VirtualService tcp routes for a service port
// (first route whose match applies), else the service's own cluster.
func (b *builder) tcpDestinations(svc *model.Service, p *model.Port) []weightedCluster {
	def := []weightedCluster{{clusterName("outbound", p.Number, "", svc.Hostname), 100}}
	vs := b.sidecarVirtualService(svc.Hostname)
	if vs == nil {
		return def
	}
	for _, tr := range vs.Spec.Tcp {
		if tr == nil {
			continue
		}
		if !b.l4Applies(tr.Match, p.Number) {
			continue
		}
		if d := b.routeDestinations(tr.Route, vs.Namespace, p.Number); len(d) > 0 {
			return d
		}
	}
	return def
}

func (b *builder) l4Applies(ms []*networking.L4MatchAttributes, port uint32) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if m == nil {
			continue
		}
		if (m.Port == 0 || m.Port == port) && appliesToMesh(m.Gateways) &&
			labelsMatch(m.SourceLabels, b.p.Meta.Labels) &&
			(m.SourceNamespace == "" || m.SourceNamespace == b.p.Meta.Namespace) {
			return true
		}
	}
	return false
}

// routeDestinations resolves L4 route destinations to clusters.
func (b *builder) routeDestinations(rs []*networking.RouteDestination, ns string, port uint32) []weightedCluster {
	var out []weightedCluster
	for _, r := range rs {
		if r == nil {
			continue
		}
		if len(rs) > 1 && r.Weight == 0 {
			continue
		}
		name, ok := b.destinationCluster(r.Destination, ns, port)
		if !ok {
			name = blackholeCluster
		}
		w := uint32(r.Weight)
		if len(rs) == 1 || w == 0 {
			w = 100
		}
		out = append(out, weightedCluster{name, w})
	}
	return out
}

// tlsDestinations returns the tls-route destinations for an SNI host.
type sniRoute struct {
	sni   []string
	dests []weightedCluster
}

// tlsRoutes are a TLS service port's VirtualService tls routes.
func (b *builder) tlsRoutes(svc *model.Service, p *model.Port) []sniRoute {
	vs := b.sidecarVirtualService(svc.Hostname)
	if vs == nil {
		return nil
	}
	var out []sniRoute
	for _, tr := range vs.Spec.Tls {
		if tr == nil {
			continue
		}
		for _, m := range tr.Match {
			if m == nil {
				continue
			}
			if (m.Port != 0 && m.Port != p.Number) || !appliesToMesh(m.Gateways) || !labelsMatch(m.SourceLabels, b.p.Meta.Labels) {
				continue
			}
			if d := b.routeDestinations(tr.Route, vs.Namespace, p.Number); len(d) > 0 {
				var sni []string
				for _, h := range m.SniHosts {
					sni = append(sni, b.resolveHost(h, vs.Namespace))
				}
				out = append(out, sniRoute{sni, d})
			}
		}
	}
	return out
}

// tlsChains routes a TLS/HTTPS service port: by SNI for tls routes, by VIP
// when the service has one, else by SNI equal to the host (Istio).
func (b *builder) tlsChains(cs *chainSet, svc *model.Service, p *model.Port) {
	for _, r := range b.tlsRoutes(svc, p) {
		m := &listenerv3.FilterChainMatch{DestinationPort: u32(p.Number), ServerNames: r.sni, TransportProtocol: "tls"}
		cs.add(&listenerv3.FilterChain{Name: "0.0.0.0_" + itoa(p.Number) + "_" + strings.Join(r.sni, ","), FilterChainMatch: m, Filters: []*listenerv3.Filter{tcpFilter(r.dests)}})
	}
	dest := []weightedCluster{{clusterName("outbound", p.Number, "", svc.Hostname), 100}}
	if len(svc.Addresses) > 0 {
		for _, m := range vipMatches(svc, p.Number) {
			cs.add(&listenerv3.FilterChain{Name: chainName(m, p.Number), FilterChainMatch: m, Filters: []*listenerv3.Filter{tcpFilter(dest)}})
		}
		return
	}
	m := &listenerv3.FilterChainMatch{DestinationPort: u32(p.Number), ServerNames: []string{svc.Hostname}, TransportProtocol: "tls"}
	cs.add(&listenerv3.FilterChain{Name: "0.0.0.0_" + itoa(p.Number) + "_" + svc.Hostname, FilterChainMatch: m, Filters: []*listenerv3.Filter{tcpFilter(dest)}})
}

// buildExplicitOutbound emits the explicit HTTP proxy: one listener at
// IP:ProxyPort whose route config explicit_http_proxy holds every outbound
// service as port-qualified virtual hosts, with CONNECT routes for TCP and
// TLS ports, and the catch-all for unknown hosts.
func (b *builder) buildExplicitOutbound() {
	b.addPassthrough(true)
	if !validProxyPort(b.p.Meta.ProxyPort) {
		return
	}
	// Without SO_ORIGINAL_DST every original-destination cluster takes
	// the destination from the request (CONNECT authority or Host).
	for _, c := range b.clusters {
		if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
			c.LbConfig = &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
				UseHttpHeader: true, HttpHeaderName: ":authority",
			}}
		}
	}
	rc := &routev3.RouteConfiguration{Name: explicitProxyName}
	seen := domainSet{}
	// tls routes first: CONNECT to an sniHost goes where the route says,
	// even when a wildcard service host also covers it.
	for _, svc := range b.outboundServices() {
		for _, p := range svc.Ports {
			if portProtocol(p) != protoTLS {
				continue
			}
			for _, r := range b.tlsRoutes(svc, p) {
				for _, sni := range r.sni {
					doms := seen.take([]string{sni + ":" + itoa(p.Number)})
					if len(doms) == 0 {
						continue
					}
					rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
						Name: "tls|" + sni + ":" + itoa(p.Number), Domains: doms,
						Routes: []*routev3.Route{connectRouteTo(r.dests)},
					})
				}
			}
		}
	}
	for _, svc := range b.outboundServices() {
		for _, p := range svc.Ports {
			pr := portProtocol(p)
			doms := seen.take(b.domains(svc, p.Number, p.Number == 80, true))
			if len(doms) == 0 {
				continue
			}
			vh := &routev3.VirtualHost{Name: svc.Hostname + ":" + itoa(p.Number), Domains: doms}
			if !pr.isHTTP() {
				vh.Routes = append(vh.Routes, b.connectRoute(svc, p))
			}
			if pr.isHTTP() || pr == protoAuto {
				vh.Routes = append(vh.Routes, b.serviceRoutes(svc, p.Number)...)
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	if len(seen.take([]string{"*"})) > 0 {
		rc.VirtualHosts = append(rc.VirtualHosts, b.catchAll(true))
	}
	b.routes[rc.Name] = rc
	b.listeners[explicitProxyName] = b.explicitListener()
}

// explicitListener is the explicit HTTP proxy listener at IP:ProxyPort,
// using the route configuration explicit_http_proxy.
func (b *builder) explicitListener() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    explicitProxyName,
		Address: socketAddress(b.bindIP(), b.p.Meta.ProxyPort),
		FilterChains: []*listenerv3.FilterChain{{
			Name:    explicitProxyName,
			Filters: []*listenerv3.Filter{hcmFilter(hcmOptions{statPrefix: explicitProxyName, rds: explicitProxyName, connect: true})},
		}},
	}
}

// validProxyPort reports whether the explicit proxy listener is built.
func validProxyPort(n uint32) bool { return n != 0 && n <= 65535 }

// connectRoute tunnels CONNECT host:port to the port's TCP destinations.
func (b *builder) connectRoute(svc *model.Service, p *model.Port) *routev3.Route {
	dests := b.tcpDestinations(svc, p)
	if portProtocol(p) == protoTLS {
		dests = []weightedCluster{{clusterName("outbound", p.Number, "", svc.Hostname), 100}}
		for _, r := range b.tlsRoutes(svc, p) {
			if sniCovers(r.sni, svc.Hostname) {
				dests = r.dests
				break
			}
		}
	}
	return connectRouteTo(dests)
}

func connectRouteTo(dests []weightedCluster) *routev3.Route {
	a := &routev3.RouteAction{}
	if len(dests) == 1 {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: dests[0].name}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, d := range dests {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: d.name, Weight: u32(d.weight)})
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	return &routev3.Route{Name: "connect", Match: connectMatch(), Action: &routev3.Route_Route{Route: connectAction(a)}}
}

func sniCovers(snis []string, host string) bool {
	for _, s := range snis {
		if hostMatches(s, host) {
			return true
		}
	}
	return false
}
