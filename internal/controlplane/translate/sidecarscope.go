package translate

import (
	"sort"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// The Sidecar resource scopes what a sidecar sees, as Istio does
// (pilot/pkg/model/sidecar.go, push_context.go getSidecarScope):
//
//   - The Sidecar that applies to a proxy is, in its namespace, the oldest
//     whose workloadSelector matches its labels, else the namespace's one
//     without selector, else the root namespace's one without selector;
//     otherwise the proxy sees every service exported to its namespace.
//   - Each egress listener imports hosts written "namespace/dnsName":
//     "." is the proxy's namespace, "*" any namespace, "~" none, and a
//     "~" prefix on the namespace excludes the hosts. A listener with a
//     port imports only that port of each service.
//   - Services that the imported VirtualServices route to are imported
//     too (in the proxy's namespace if a service of that name lives
//     there), and only imported VirtualServices apply.
//   - outboundTrafficPolicy replaces the mesh's for the proxy.
//   - Gateways (routers) are never scoped.

// sidecarScope is the Sidecar that applies to one proxy, resolved.
type sidecarScope struct {
	sidecar *networkingv1.Sidecar // nil: none applies
	egress  []*egressScope
}

// egressScope is one egress listener's imports.
type egressScope struct {
	listener *networking.IstioEgressListener
	hosts    map[string]*importedHosts // by namespace ("*" for any)
	services []*model.Service          // what it imports (set by applySidecarScope)
}

type importedHosts struct {
	hosts    []string
	excluded []string
}

func (h *importedHosts) matchesService(host string) bool {
	for _, p := range h.hosts {
		if p == host || hostMatches(p, host) {
			return true
		}
	}
	return false
}

func (h *importedHosts) matchesVS(host string) bool {
	for _, p := range h.hosts {
		if hostsIntersect(p, host) {
			return true
		}
	}
	return false
}

func (h *importedHosts) excludes(host string) bool {
	for _, p := range h.excluded {
		if hostMatches(p, host) {
			return true
		}
	}
	return false
}

// selectSidecar returns the Sidecar that applies to a proxy with meta m.
func selectSidecar(snap *model.Snapshot, m *node.Meta, root string) *networkingv1.Sidecar {
	if m.Type == node.Router {
		return nil
	}
	var inNS []*networkingv1.Sidecar
	var rootDefault *networkingv1.Sidecar
	for _, sc := range byCreation(snap.Sidecars, func(s *networkingv1.Sidecar) *metav1.ObjectMeta { return &s.ObjectMeta }) {
		if sc == nil {
			continue
		}
		if sc.Namespace == m.Namespace {
			inNS = append(inNS, sc)
		}
		if sc.Namespace == root && sc.Spec.WorkloadSelector == nil && rootDefault == nil {
			rootDefault = sc
		}
	}
	for _, sc := range inNS {
		if ws := sc.Spec.WorkloadSelector; ws != nil && labelsMatch(ws.Labels, m.Labels) {
			return sc
		}
	}
	for _, sc := range inNS {
		if sc.Spec.WorkloadSelector == nil {
			return sc
		}
	}
	return rootDefault
}

// newSidecarScope resolves sc's egress imports for a proxy in namespace ns.
func newSidecarScope(sc *networkingv1.Sidecar, ns string) *sidecarScope {
	s := &sidecarScope{sidecar: sc}
	listeners := sc.Spec.Egress
	if len(listeners) == 0 {
		listeners = []*networking.IstioEgressListener{{Hosts: []string{"*/*"}}}
	}
	for _, l := range listeners {
		if l == nil {
			continue
		}
		e := &egressScope{listener: l, hosts: map[string]*importedHosts{}}
		for _, h := range l.Hosts {
			hns, name, ok := strings.Cut(h, "/")
			if !ok || strings.Contains(name, "/") {
				continue // validation rejects it; Istio skips it too
			}
			excluded := strings.HasPrefix(hns, "~")
			if excluded {
				hns = strings.TrimPrefix(hns, "~")
				if hns == "" {
					hns = "*"
				}
			}
			if hns == "." {
				hns = ns
			}
			ih := e.hosts[hns]
			if ih == nil {
				ih = &importedHosts{}
				e.hosts[hns] = ih
			}
			if excluded {
				ih.excluded = append(ih.excluded, name)
			} else {
				ih.hosts = append(ih.hosts, name)
			}
		}
		s.egress = append(s.egress, e)
	}
	return s
}

// outboundPolicy is the Sidecar's outboundTrafficPolicy mode, if set.
func (s *sidecarScope) outboundPolicy() (networking.OutboundTrafficPolicy_Mode, bool) {
	if s == nil || s.sidecar == nil || s.sidecar.Spec.OutboundTrafficPolicy == nil {
		return 0, false
	}
	return s.sidecar.Spec.OutboundTrafficPolicy.Mode, true
}

// imports reports whether the egress listener imports svc, and the service
// as imported (trimmed to the listener's port when it has one; nil if the
// service lacks that port).
func (e *egressScope) imports(svc *model.Service) (*model.Service, bool) {
	nsHosts, nsFound := e.hosts[svc.Namespace]
	any, anyFound := e.hosts["*"]
	if (nsFound && nsHosts.excludes(svc.Hostname)) || (anyFound && any.excludes(svc.Hostname)) {
		return nil, false
	}
	if !(nsFound && nsHosts.matchesService(svc.Hostname)) && !(anyFound && any.matchesService(svc.Hostname)) {
		return nil, false
	}
	return e.trimPort(svc)
}

// trimPort keeps only the listener's port of svc, when it has one.
func (e *egressScope) trimPort(svc *model.Service) (*model.Service, bool) {
	n := e.listener.GetPort().GetNumber()
	if n == 0 {
		return svc, true
	}
	p := findPort(svc, n)
	if p == nil {
		return nil, false
	}
	if len(svc.Ports) == 1 {
		return svc, true
	}
	c := *svc
	c.Ports = []*model.Port{p}
	return &c, true
}

// importsVS reports whether the egress listener imports vs (resolved
// hosts) from its namespace.
func (e *egressScope) importsVS(vs *networkingv1.VirtualService, resolve func(string, string) string) bool {
	nsHosts, nsFound := e.hosts[vs.Namespace]
	any, anyFound := e.hosts["*"]
	for _, h := range vs.Spec.Hosts {
		h = resolve(h, vs.Namespace)
		if (nsFound && nsHosts.excludes(h)) || (anyFound && any.excludes(h)) {
			continue
		}
		if (nsFound && nsHosts.matchesVS(h)) || (anyFound && any.matchesVS(h)) {
			return true
		}
	}
	return false
}

// applySidecarScope narrows the builder's services and VirtualServices to
// what the proxy's Sidecar imports. candidates are the services exported
// to the proxy's namespace, in registry order.
func (b *builder) applySidecarScope(candidates []*model.Service) {
	ns := b.p.Meta.Namespace
	var picked []*model.Service
	var vss []*networkingv1.VirtualService
	seenVS := map[*networkingv1.VirtualService]bool{}
	all := b.sortedVirtualServices()
	for _, e := range b.scope.egress {
		from := len(picked)
		for _, svc := range candidates {
			if s, ok := e.imports(svc); ok {
				picked = append(picked, s)
			}
		}
		for _, vs := range all {
			if seenVS[vs] || !e.importsVS(vs, b.resolveHost) {
				continue
			}
			seenVS[vs] = true
			vss = append(vss, vs)
			// Destinations of an imported VirtualService are imported too.
			for host, ports := range vsDestinations(vs, ns, b.resolveHost) {
				var inNS, first *model.Service
				for _, svc := range candidates {
					if svc.Hostname != host {
						continue
					}
					if svc.Namespace == ns {
						inNS = svc
					} else if first == nil {
						first = svc
					}
				}
				svc := inNS
				if svc == nil {
					svc = first
				}
				if svc == nil {
					continue
				}
				if e.listener.GetPort().GetNumber() != 0 {
					svc, _ = e.trimPort(svc)
				} else {
					svc = trimToPorts(svc, ports)
				}
				if svc != nil {
					picked = append(picked, svc)
				}
			}
		}
		e.services = picked[from:len(picked):len(picked)]
	}
	vss = byCreation(vss, func(v *networkingv1.VirtualService) *metav1.ObjectMeta { return &v.ObjectMeta })
	b.vsCache = &vss
	b.setServices(picked)
}

// setServices installs the visible services: one per hostname, the one in
// the proxy's namespace when several namespaces define it, else the first;
// a service imported twice (several egress listeners, other ports) keeps
// the union of its ports.
func (b *builder) setServices(svcs []*model.Service) {
	ns := b.p.Meta.Namespace
	chosen := map[string]string{}
	for _, s := range svcs {
		if cur, ok := chosen[s.Hostname]; !ok || (s.Namespace == ns && cur != ns) {
			chosen[s.Hostname] = s.Namespace
		}
	}
	b.services, b.byHost = nil, map[string]*model.Service{}
	for _, s := range svcs {
		if chosen[s.Hostname] != s.Namespace {
			continue
		}
		s = usablePorts(s)
		if prev, ok := b.byHost[s.Hostname]; ok {
			merged := unionPorts(prev, s)
			b.byHost[s.Hostname] = merged
			for i := range b.services {
				if b.services[i] == prev {
					b.services[i] = merged
				}
			}
			continue
		}
		b.services = append(b.services, s)
		b.byHost[s.Hostname] = s
	}
	sort.SliceStable(b.services, func(i, j int) bool { return b.services[i].Hostname < b.services[j].Hostname })
}

// unionPorts is a with b's ports added (same service, trimmed differently).
func unionPorts(a, b *model.Service) *model.Service {
	if a == b {
		return a
	}
	var add []*model.Port
	for _, p := range b.Ports {
		if findPort(a, p.Number) == nil {
			add = append(add, p)
		}
	}
	if len(add) == 0 {
		return a
	}
	c := *a
	c.Ports = append(append([]*model.Port(nil), a.Ports...), add...)
	sort.SliceStable(c.Ports, func(i, j int) bool { return c.Ports[i].Number < c.Ports[j].Number })
	return &c
}

// vsDestinations are the hosts a VirtualService routes to, with the ports
// named (0: any port), skipping routes whose matches all name another
// source namespace (Istio's virtualServiceDestinationsFilteredBySourceNamespace).
func vsDestinations(vs *networkingv1.VirtualService, clientNS string, resolve func(string, string) string) map[string]map[uint32]bool {
	out := map[string]map[uint32]bool{}
	add := func(d *networking.Destination) {
		if d == nil || d.Host == "" {
			return
		}
		h := resolve(d.Host, vs.Namespace)
		if out[h] == nil {
			out[h] = map[uint32]bool{}
		}
		out[h][d.GetPort().GetNumber()] = true
	}
	sourceOK := func(nss []string) bool {
		if len(nss) == 0 {
			return true
		}
		for _, n := range nss {
			if n == "" || n == clientNS {
				return true
			}
		}
		return false
	}
	for _, r := range vs.Spec.Http {
		var nss []string
		for _, m := range r.GetMatch() {
			nss = append(nss, m.GetSourceNamespace())
		}
		if !sourceOK(nss) {
			continue
		}
		for _, d := range r.GetRoute() {
			add(d.GetDestination())
		}
		add(r.GetMirror())
		for _, m := range r.GetMirrors() {
			add(m.GetDestination())
		}
	}
	for _, r := range vs.Spec.Tcp {
		var nss []string
		for _, m := range r.GetMatch() {
			nss = append(nss, m.GetSourceNamespace())
		}
		if !sourceOK(nss) {
			continue
		}
		for _, d := range r.GetRoute() {
			add(d.GetDestination())
		}
	}
	for _, r := range vs.Spec.Tls {
		var nss []string
		for _, m := range r.GetMatch() {
			nss = append(nss, m.GetSourceNamespace())
		}
		if !sourceOK(nss) {
			continue
		}
		for _, d := range r.GetRoute() {
			add(d.GetDestination())
		}
	}
	return out
}

// trimToPorts keeps the ports a VirtualService names (all when it names
// none, or names a destination without a port).
func trimToPorts(svc *model.Service, ports map[uint32]bool) *model.Service {
	if len(ports) == 0 || ports[0] {
		return svc
	}
	var keep []*model.Port
	for _, p := range svc.Ports {
		if ports[p.Number] {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	if len(keep) == len(svc.Ports) {
		return svc
	}
	c := *svc
	c.Ports = keep
	return &c
}

// buildBoundEgress adds a listener bound to an address for each egress
// listener with a port whose captureMode is NONE or that names a bind IP,
// as Istio does: the application connects to it directly (captureMode NONE
// defaults the bind to 127.0.0.1). HTTP ports route by Host through the
// port's route configuration; TCP ports go to the listener's service on
// that port. A listener bound to a unix socket is built by unixEgress.
func (b *builder) buildBoundEgress() {
	if b.scope == nil {
		return
	}
	for _, e := range b.scope.egress {
		l := e.listener
		port := l.GetPort().GetNumber()
		if l.GetPort() != nil && port == 0 && strings.HasPrefix(l.Bind, unixPrefix) {
			b.unixEgress(e)
			continue
		}
		if port == 0 || port > 65535 || strings.HasPrefix(l.Bind, unixPrefix) {
			continue
		}
		bind := l.Bind
		if bind == "" {
			if l.CaptureMode != networking.CaptureMode_NONE {
				continue // captured traffic: virtualOutbound serves the port
			}
			bind = "127.0.0.1"
		}
		name := bind + "_" + itoa(port)
		if _, taken := b.listeners[name]; taken {
			continue
		}
		var svc *model.Service
		var sp *model.Port
		for _, s := range e.services {
			if p := findPort(b.byHost[s.Hostname], port); p != nil {
				svc, sp = b.byHost[s.Hostname], p
				break
			}
		}
		proto := protocolOf(l.GetPort().GetProtocol())
		if l.GetPort().GetProtocol() == "" && sp != nil {
			proto = portProtocol(sp)
		}
		var f *listenerv3.Filter
		switch {
		case proto.isHTTP():
			rcName := itoa(port)
			if _, ok := b.routes[rcName]; !ok {
				b.routes[rcName] = b.sidecarRouteConfig(port)
			}
			f = hcmFilter(hcmOptions{statPrefix: "outbound_" + name, rds: rcName})
		case svc != nil:
			f = tcpFilter(b.tcpDestinations(svc, sp))
		default:
			continue // nothing imported on this TCP port
		}
		b.listeners[name] = &listenerv3.Listener{
			Name:         name,
			Address:      socketAddress(bind, port),
			FilterChains: []*listenerv3.FilterChain{{Name: name, Filters: []*listenerv3.Filter{f}}},
		}
	}
}
