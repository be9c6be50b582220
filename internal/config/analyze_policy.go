package config

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	corev1 "k8s.io/api/core/v1"
)

// analyzeGateways checks selectors (when workloads are known), servers
// that collide with another Gateway's (IST0145), ports the gateway's
// Service does not expose (IST0162), and credentialName Secrets (when any
// Secret is known).
func analyzeGateways(ix *index) []*Message {
	var out []*Message
	gws := ix.byKind[KindGateway]
	for _, r := range gws {
		gw := r.Spec.(*networking.Gateway)
		if len(ix.workloads) > 0 && len(gw.Selector) > 0 {
			found := false
			for _, w := range ix.workloads {
				if selects(gw.Selector, w.labels) {
					found = true
				}
			}
			if !found {
				out = append(out, newMessage(msgRefNotFound, r, "spec.selector", "selector", labelString(gw.Selector)))
			}
		}
		svcs := ix.gatewayServices(gw.Selector)
		for i, s := range gw.Servers {
			p := fmt.Sprintf("spec.servers[%d]", i)
			if s.Port == nil {
				continue
			}
			if len(svcs) > 0 && !anyServicePort(svcs, s.Port.Number) {
				out = append(out, newMessage(msgGatewayPortNotOnService, r, p+".port.number", s.Port.Number, labelString(gw.Selector)))
			}
			if s.Tls != nil && s.Tls.CredentialName != "" && ix.knowsSecrets() {
				nss := []string{r.Namespace}
				for _, svc := range svcs {
					nss = append(nss, svc.res.Namespace)
				}
				found := false
				for _, ns := range nss {
					found = found || ix.secrets[ns+"/"+s.Tls.CredentialName]
				}
				if !found {
					out = append(out, newMessage(msgRefNotFound, r, p+".tls.credentialName", "credentialName", s.Tls.CredentialName))
				}
			}
		}
	}
	// Two Gateways selecting the same workload may not both serve one
	// host on one port: only one of them would be used.
	for _, a := range gws {
		ga := a.Spec.(*networking.Gateway)
		var others []string
		var port uint32
		var hosts []string
		path := ""
		for _, b := range gws {
			gb := b.Spec.(*networking.Gateway)
			if a == b || labelString(ga.Selector) != labelString(gb.Selector) {
				continue
			}
			for i, sa := range ga.Servers {
				for _, sb := range gb.Servers {
					if sa.Port == nil || sb.Port == nil || sa.Port.Number != sb.Port.Number {
						continue
					}
					if h := overlappingHosts(sa.Hosts, sb.Hosts); len(h) > 0 {
						if !slices.Contains(others, b.Namespace+"/"+b.Name) {
							others = append(others, b.Namespace+"/"+b.Name)
						}
						port, hosts = sa.Port.Number, h
						if path == "" {
							path = fmt.Sprintf("spec.servers[%d]", i)
						}
					}
				}
			}
		}
		if len(others) > 0 {
			out = append(out, newMessage(msgConflictingGateways, a, path, strings.Join(others, ","), labelString(ga.Selector), strconv.Itoa(int(port)), strings.Join(hosts, ",")))
		}
	}
	return out
}

func overlappingHosts(a, b []string) []string {
	var out []string
	for _, ha := range a {
		_, xa, ok := strings.Cut(ha, "/")
		if !ok {
			xa = ha
		}
		for _, hb := range b {
			_, xb, ok := strings.Cut(hb, "/")
			if !ok {
				xb = hb
			}
			if hostMatches(xa, xb) && !slices.Contains(out, xa) {
				out = append(out, xa)
			}
		}
	}
	return out
}

// gatewayServices returns the Services whose pods a gateway selector
// picks: pods carry both label sets, so one must contain the other.
func (ix *index) gatewayServices(sel map[string]string) []*service {
	if len(sel) == 0 {
		return nil
	}
	var out []*service
	for _, s := range ix.services {
		if len(s.selector) > 0 && (selects(s.selector, sel) || selects(sel, s.selector)) {
			out = append(out, s)
		}
	}
	return out
}

func anyServicePort(svcs []*service, n uint32) bool {
	for _, s := range svcs {
		if slices.Contains(s.ports, n) || slices.Contains(s.targets, n) {
			return true
		}
	}
	return false
}

// analyzeSidecars: several Sidecars without selector in one namespace
// (IST0111), or several selecting one workload (IST0110).
func analyzeSidecars(ix *index) []*Message {
	var out []*Message
	noSel := map[string][]*Resource{}
	var nss []string
	for _, r := range ix.byKind[KindSidecar] {
		sc := r.Spec.(*networking.Sidecar)
		if sc.WorkloadSelector == nil || len(sc.WorkloadSelector.Labels) == 0 {
			if _, ok := noSel[r.Namespace]; !ok {
				nss = append(nss, r.Namespace)
			}
			noSel[r.Namespace] = append(noSel[r.Namespace], r)
		}
	}
	for _, ns := range nss {
		rs := noSel[ns]
		if len(rs) < 2 {
			continue
		}
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Name
		}
		for _, r := range rs {
			out = append(out, newMessage(msgSidecarsNoSelector, r, "spec", names, ns))
		}
	}
	for _, w := range ix.workloads {
		var hit []*Resource
		for _, r := range ix.byKind[KindSidecar] {
			sc := r.Spec.(*networking.Sidecar)
			if r.Namespace == w.ns && sc.WorkloadSelector != nil && len(sc.WorkloadSelector.Labels) > 0 && selects(sc.WorkloadSelector.Labels, w.labels) {
				hit = append(hit, r)
			}
		}
		if len(hit) < 2 {
			continue
		}
		names := make([]string, len(hit))
		for i, r := range hit {
			names[i] = r.Name
		}
		for _, r := range hit {
			out = append(out, newMessage(msgSidecarSelectorConflict, r, "spec.workloadSelector", names, w.ns, w.name))
		}
	}
	return out
}

// analyzeSelectors reports policies whose selector matches no known
// workload (IST0127). Workloads are WorkloadEntries (all a file set can
// show) and, from a cluster, Pods; without any the check is skipped.
func analyzeSelectors(ix *index) []*Message {
	if len(ix.workloads) == 0 {
		return nil
	}
	var out []*Message
	for _, r := range ix.all {
		var sel map[string]string
		path := "spec.selector"
		switch s := r.Spec.(type) {
		case *security.AuthorizationPolicy:
			sel = s.GetSelector().GetMatchLabels()
		case *security.PeerAuthentication:
			sel = s.GetSelector().GetMatchLabels()
		case *security.RequestAuthentication:
			sel = s.GetSelector().GetMatchLabels()
		case *telemetry.Telemetry:
			sel = s.GetSelector().GetMatchLabels()
		case *networking.Sidecar:
			sel, path = s.GetWorkloadSelector().GetLabels(), "spec.workloadSelector"
		}
		if len(sel) == 0 {
			continue
		}
		found := false
		for _, w := range ix.workloads {
			if (w.ns == r.Namespace || r.Namespace == ix.rootNS) && selects(sel, w.labels) {
				found = true
			}
		}
		if !found {
			out = append(out, newMessage(msgNoMatchingWorkloads, r, path, labelString(sel)))
		}
	}
	return out
}

// analyzeAuthorization reports namespaces an AuthorizationPolicy names
// that no resource lives in (IST0101). Patterns with "*" are skipped.
func analyzeAuthorization(ix *index) []*Message {
	var out []*Message
	known := func(ns string) bool {
		return strings.Contains(ns, "*") || ix.namespaces[ns] || ns == ix.rootNS
	}
	for _, r := range ix.byKind[KindAuthorizationPolicy] {
		ap := r.Spec.(*security.AuthorizationPolicy)
		// Istio semantics: a policy without rules matches no request, so
		// DENY/AUDIT/CUSTOM do nothing, while ALLOW leaves nothing allowed.
		if len(ap.Rules) == 0 {
			switch ap.Action {
			case security.AuthorizationPolicy_ALLOW:
				scope := ""
				if ap.Selector == nil && ap.TargetRef == nil && len(ap.TargetRefs) == 0 {
					scope = " (every workload in namespace " + r.Namespace + ")"
					if r.Namespace == ix.rootNS {
						scope = " (every workload in the mesh)"
					}
				}
				out = append(out, newMessage(msgAllowNothing, r, "spec", scope))
			default:
				out = append(out, newMessage(msgIneffectivePolicy, r, "spec", "action "+ap.Action.String()+" without rules matches no request"))
			}
		}
		for i, rule := range ap.Rules {
			for j, f := range rule.GetFrom() {
				src := f.GetSource()
				for _, l := range []namedList{{"namespaces", src.GetNamespaces()}, {"notNamespaces", src.GetNotNamespaces()}} {
					for k, ns := range l.list {
						if !known(ns) {
							out = append(out, newMessage(msgRefNotFound, r, fmt.Sprintf("spec.rules[%d].from[%d].source.%s[%d]", i, j, l.name, k), "namespace", ns))
						}
					}
				}
			}
			for j, c := range rule.GetWhen() {
				if c.Key != "source.namespace" {
					continue
				}
				for _, l := range []namedList{{"values", c.Values}, {"notValues", c.NotValues}} {
					for k, ns := range l.list {
						if !known(ns) {
							out = append(out, newMessage(msgRefNotFound, r, fmt.Sprintf("spec.rules[%d].when[%d].%s[%d]", i, j, l.name, k), "namespace", ns))
						}
					}
				}
			}
		}
	}
	return out
}

// analyzeMTLS reports DestinationRules whose TLS mode contradicts the
// PeerAuthentication in force for the destination (IST0113): plaintext
// to a STRICT server, or Istio mTLS to a server with mTLS DISABLE. Both
// fail every request.
func analyzeMTLS(ix *index) []*Message {
	var out []*Message
	for _, r := range ix.byKind[KindDestinationRule] {
		dr := r.Spec.(*networking.DestinationRule)
		if dr.Host == "" || strings.HasPrefix(dr.Host, "*") {
			continue
		}
		fq := ResolveHost(dr.Host, r.Namespace, ix.domain)
		svc, ok := ix.services[fq]
		if !ok {
			continue
		}
		check := func(path string, tls *networking.ClientTLSSettings, port uint32) {
			if tls == nil {
				return
			}
			var mtls bool
			switch tls.Mode {
			case networking.ClientTLSSettings_DISABLE:
			case networking.ClientTLSSettings_ISTIO_MUTUAL:
				mtls = true
			case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
				// The client's own TLS, not Istio's: a STRICT sidecar
				// refuses it as it refuses plaintext (no mesh certificate).
				// Only when the service has workloads with sidecars (a
				// selector); DISABLE below never conflicts with it.
				if len(svc.selector) == 0 {
					return
				}
			default:
				return
			}
			pa, mode := ix.peerAuthFor(svc, port)
			if pa == nil {
				return
			}
			if (!mtls && mode == security.PeerAuthentication_MutualTLS_STRICT) || (mtls && mode == security.PeerAuthentication_MutualTLS_DISABLE) {
				out = append(out, newMessage(msgMTLSConflict, r, path, fq, r.Namespace+"/"+r.Name, mtls, pa.Namespace+"/"+pa.Name, mode.String()))
			}
		}
		check("spec.trafficPolicy.tls.mode", dr.GetTrafficPolicy().GetTls(), 0)
		for i, pl := range dr.GetTrafficPolicy().GetPortLevelSettings() {
			check(fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].tls.mode", i), pl.Tls, pl.GetPort().GetNumber())
		}
		for i, s := range dr.Subsets {
			check(fmt.Sprintf("spec.subsets[%d].trafficPolicy.tls.mode", i), s.GetTrafficPolicy().GetTls(), 0)
		}
	}
	return out
}

// analyzeAutoMTLSOff reports services under a STRICT PeerAuthentication
// while MeshConfig enableAutoMtls is false and no DestinationRule sets
// ISTIO_MUTUAL for them (WFT0010): clients in the mesh then send
// plaintext, which STRICT refuses.
func analyzeAutoMTLSOff(ix *index) []*Message {
	if ix.autoMTLS {
		return nil
	}
	istioMutual := map[string]bool{}
	for _, r := range ix.byKind[KindDestinationRule] {
		dr := r.Spec.(*networking.DestinationRule)
		if dr.GetTrafficPolicy().GetTls().GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
			istioMutual[ResolveHost(dr.Host, r.Namespace, ix.domain)] = true
		}
	}
	var out []*Message
	for _, host := range sortedServiceHosts(ix) {
		svc := ix.services[host]
		if istioMutual[host] || len(svc.selector) == 0 {
			continue
		}
		for _, port := range svc.ports {
			pa, mode := ix.peerAuthFor(svc, port)
			if pa == nil || mode != security.PeerAuthentication_MutualTLS_STRICT {
				continue
			}
			out = append(out, newMessage(msgAutoMTLSOffStrict, pa, "spec.mtls.mode", host, port))
			break
		}
	}
	return out
}

func sortedServiceHosts(ix *index) []string {
	hosts := make([]string, 0, len(ix.services))
	for h := range ix.services {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts
}

// peerAuthFor finds the PeerAuthentication that decides the mTLS mode of
// a service's workloads: a workload policy whose selector the service's
// pods satisfy, else the namespace policy, else the mesh policy in the
// root namespace (Istio's precedence). UNSET inherits from the next level.
func (ix *index) peerAuthFor(svc *service, port uint32) (*Resource, security.PeerAuthentication_MutualTLS_Mode) {
	var workload, namespace, mesh *Resource
	for _, r := range ix.byKind[KindPeerAuthentication] {
		pa := r.Spec.(*security.PeerAuthentication)
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case r.Namespace == svc.res.Namespace && len(sel) > 0 && len(svc.selector) > 0 && selects(sel, svc.selector):
			workload = r
		case r.Namespace == svc.res.Namespace && len(sel) == 0:
			namespace = r
		case r.Namespace == ix.rootNS && len(sel) == 0:
			mesh = r
		}
	}
	for _, r := range []*Resource{workload, namespace, mesh} {
		if r == nil {
			continue
		}
		pa := r.Spec.(*security.PeerAuthentication)
		if pm, ok := pa.PortLevelMtls[svcTargetPort(svc, port)]; ok && r == workload && pm.Mode != security.PeerAuthentication_MutualTLS_UNSET {
			return r, pm.Mode
		}
		if m := pa.GetMtls().GetMode(); m != security.PeerAuthentication_MutualTLS_UNSET {
			return r, m
		}
	}
	return nil, security.PeerAuthentication_MutualTLS_UNSET
}

// svcTargetPort maps a service port to the workload port PeerAuthentication
// port-level settings use.
func svcTargetPort(svc *service, port uint32) uint32 {
	for i, p := range svc.ports {
		if p == port {
			return svc.targets[i]
		}
	}
	return port
}

// Protocol prefixes of Istio's port naming convention: name: <protocol>[-<suffix>].
var portNamePrefixes = []string{"http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "udp", "mongo", "mysql", "redis", "h2c"}

// analyzeServices reports Service ports that do not follow Istio's naming
// convention and have no appProtocol (IST0118, Info): their protocol is
// sniffed instead of declared.
func analyzeServices(ix *index) []*Message {
	var out []*Message
	for _, r := range ix.byKind[KindService] {
		switch r.Namespace {
		case "kube-system", "kube-public", "istio-system":
			continue
		}
		svc := r.Object.(*corev1.Service)
		for i, p := range svc.Spec.Ports {
			if p.AppProtocol != nil && *p.AppProtocol != "" {
				continue
			}
			if followsPortConvention(p.Name) {
				continue
			}
			out = append(out, newMessage(msgPortName, r, fmt.Sprintf("spec.ports[%d].name", i), p.Name, p.Port, p.TargetPort.String()))
		}
	}
	return out
}

func followsPortConvention(name string) bool {
	name = strings.ToLower(name)
	for _, pre := range portNamePrefixes {
		if name == pre || strings.HasPrefix(name, pre+"-") {
			return true
		}
	}
	return false
}

// analyzeServiceEntries: a ServiceEntry with TCP (or unset) ports and no
// addresses cannot be told apart from other TCP traffic (IST0134).
func analyzeServiceEntries(ix *index) []*Message {
	var out []*Message
	for _, r := range ix.byKind[KindServiceEntry] {
		se := r.Spec.(*networking.ServiceEntry)
		if len(se.Addresses) > 0 {
			continue
		}
		for i, p := range se.Ports {
			if p.Protocol == "" || strings.EqualFold(p.Protocol, "TCP") {
				out = append(out, newMessage(msgSEAddressRequired, r, fmt.Sprintf("spec.ports[%d]", i)))
				break
			}
		}
	}
	return out
}
