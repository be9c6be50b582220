package config

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// analyzeVirtualServices checks every reference a VirtualService makes:
// destination hosts, ports and subsets, gateways, and that gateway-bound
// hosts are served by the gateways (Istio's destinationhost,
// destinationrule, gateway and virtualservice analyzers).
func analyzeVirtualServices(ix *index) []*Message {
	var out []*Message
	for _, r := range ix.byKind[KindVirtualService] {
		vs := r.Spec.(*networking.VirtualService)
		gatewayBound := false
		for i, g := range vs.Gateways {
			if g == "mesh" {
				continue
			}
			gatewayBound = true
			p := fmt.Sprintf("spec.gateways[%d]", i)
			gw, ok := ix.gateways[gatewayRef(g, r.Namespace)]
			if !ok {
				out = append(out, newMessage(msgRefNotFound, r, p, "gateway", g))
				continue
			}
			if m := hostsNotInGateway(ix, r, vs, gw, p); m != nil {
				out = append(out, m)
			}
		}
		check := func(p string, d *networking.Destination) {
			if d == nil {
				return
			}
			out = append(out, ix.checkDestination(r, p, d, gatewayBound)...)
		}
		for i, h := range vs.Http {
			hp := fmt.Sprintf("spec.http[%d]", i)
			for j, m := range h.Match {
				for k, g := range m.Gateways {
					if g != "mesh" && !slices.Contains(vs.Gateways, g) {
						if _, ok := ix.gateways[gatewayRef(g, r.Namespace)]; !ok {
							out = append(out, newMessage(msgRefNotFound, r, fmt.Sprintf("%s.match[%d].gateways[%d]", hp, j, k), "gateway", g))
						}
					}
				}
			}
			for j, d := range h.Route {
				check(fmt.Sprintf("%s.route[%d].destination", hp, j), d.Destination)
			}
			check(hp+".mirror", h.Mirror)
			for j, m := range h.Mirrors {
				check(fmt.Sprintf("%s.mirrors[%d].destination", hp, j), m.Destination)
			}
		}
		for i, t := range vs.Tcp {
			for j, d := range t.Route {
				check(fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j), d.Destination)
			}
		}
		for i, t := range vs.Tls {
			for j, d := range t.Route {
				check(fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j), d.Destination)
			}
		}
		out = append(out, unreachableRules(r, vs)...)
	}
	return out
}

// checkDestination reports a destination whose host, port or subset does
// not exist. Wildcard hosts cannot be checked.
func (ix *index) checkDestination(r *Resource, p string, d *networking.Destination, gatewayBound bool) []*Message {
	if d.Host == "" || strings.HasPrefix(d.Host, "*") || isIP(d.Host) {
		return nil
	}
	fq, ports, ok := ix.lookupHost(d.Host, r.Namespace)
	if !ok {
		return []*Message{newMessage(msgRefNotFound, r, p+".host", "host", d.Host)}
	}
	var out []*Message
	if d.Port != nil && d.Port.Number != 0 && ports != nil && !slices.Contains(ports, d.Port.Number) {
		out = append(out, newMessage(msgRefNotFound, r, p+".port.number", "host:port", fmt.Sprintf("%s:%d", d.Host, d.Port.Number)))
	}
	// A gateway picks the destination port itself only when the service
	// has a single port (Istio's VirtualServiceDestinationPortSelectorRequired).
	if gatewayBound && (d.Port == nil || d.Port.Number == 0) && len(ports) > 1 {
		out = append(out, newMessage(msgPortSelectorRequired, r, p, fq, ports))
	}
	if d.Subset != "" && !ix.hasSubset(fq, d.Subset) {
		out = append(out, newMessage(msgRefNotFound, r, p+".subset", "host+subset in destinationrule", d.Host+"+"+d.Subset))
	}
	return out
}

// hostsNotInGateway reports VirtualService hosts that no server of the
// gateway accepts (IST0132).
func hostsNotInGateway(ix *index, r *Resource, vs *networking.VirtualService, gwRes *Resource, p string) *Message {
	gw := gwRes.Spec.(*networking.Gateway)
	var missing []string
	for _, h := range vs.Hosts {
		found := false
		for _, s := range gw.Servers {
			for _, sh := range s.Hosts {
				ns, host, ok := strings.Cut(sh, "/")
				if !ok {
					ns, host = "*", sh
				}
				if ns != "*" && ns != r.Namespace && !(ns == "." && r.Namespace == gwRes.Namespace) {
					continue
				}
				if hostMatches(ResolveHost(h, r.Namespace, ix.domain), host) || hostMatches(h, host) {
					found = true
				}
			}
		}
		if !found {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return newMessage(msgHostNotInGateway, r, p, missing, r.Namespace+"/"+r.Name, gwRes.Namespace+"/"+gwRes.Name)
}

// unreachableRules finds HTTP rules after a catch-all rule (IST0130) and
// matches repeated from an earlier rule (IST0131).
func unreachableRules(r *Resource, vs *networking.VirtualService) []*Message {
	var out []*Message
	catchAll := -1
	type seen struct{ rule, match int }
	matches := []*networking.HTTPMatchRequest{}
	where := []seen{}
	for i, h := range vs.Http {
		hp := fmt.Sprintf("spec.http[%d]", i)
		if catchAll >= 0 {
			out = append(out, newMessage(msgUnreachableRule, r, hp, ruleName(i, h.Name), "only the last rule can have no matches"))
			continue
		}
		if len(h.Match) == 0 {
			catchAll = i
			continue
		}
		for j, m := range h.Match {
			for k, prev := range matches {
				if where[k].rule != i && proto.Equal(stripName(prev), stripName(m)) {
					out = append(out, newMessage(msgIneffectiveMatch, r, fmt.Sprintf("%s.match[%d]", hp, j), ruleName(i, h.Name), j, where[k].rule))
					break
				}
			}
			matches = append(matches, m)
			where = append(where, seen{i, j})
		}
	}
	return out
}

func ruleName(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprint(i)
}

func stripName(m *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
	c := proto.Clone(m).(*networking.HTTPMatchRequest)
	c.Name = ""
	return c
}

// analyzeMeshVSConflicts reports VirtualServices bound to the mesh that
// claim the same host (IST0109); Istio merges only gateway-bound ones.
func analyzeMeshVSConflicts(ix *index) []*Message {
	type claim struct {
		r    *Resource
		path string
	}
	byHost := map[string][]claim{}
	var hosts []string
	for _, r := range ix.byKind[KindVirtualService] {
		vs := r.Spec.(*networking.VirtualService)
		if len(vs.Gateways) > 0 && !slices.Contains(vs.Gateways, "mesh") {
			continue
		}
		for i, h := range vs.Hosts {
			fq := ResolveHost(h, r.Namespace, ix.domain)
			if _, ok := byHost[fq]; !ok {
				hosts = append(hosts, fq)
			}
			byHost[fq] = append(byHost[fq], claim{r, fmt.Sprintf("spec.hosts[%d]", i)})
		}
	}
	var out []*Message
	for _, h := range hosts {
		cs := byHost[h]
		for _, c := range cs {
			// exportTo "." keeps a VirtualService private to its
			// namespace, so it only conflicts with its neighbours.
			names := []string{c.r.Namespace + "/" + c.r.Name}
			for _, o := range cs {
				if o.r == c.r {
					continue
				}
				if o.r.Namespace == c.r.Namespace || (!privateVS(o.r) && !privateVS(c.r)) {
					names = append(names, o.r.Namespace+"/"+o.r.Name)
				}
			}
			if len(names) > 1 {
				slices.Sort(names)
				out = append(out, newMessage(msgMeshVSConflict, c.r, c.path, strings.Join(names, ","), h))
			}
		}
	}
	return out
}

func privateVS(r *Resource) bool {
	vs := r.Spec.(*networking.VirtualService)
	return len(vs.ExportTo) == 1 && vs.ExportTo[0] == "."
}

// analyzeDestinationRules reports DestinationRules for hosts nothing
// provides (IST0101) and subsets that several rules for one host define.
func analyzeDestinationRules(ix *index) []*Message {
	var out []*Message
	firstSubset := map[string]*Resource{} // host+subset -> first rule
	for _, r := range ix.byKind[KindDestinationRule] {
		dr := r.Spec.(*networking.DestinationRule)
		out = append(out, drCredentials(ix, r, dr)...)
		if dr.Host == "" || strings.HasPrefix(dr.Host, "*") || isIP(dr.Host) {
			continue
		}
		fq, _, ok := ix.lookupHost(dr.Host, r.Namespace)
		if !ok {
			out = append(out, newMessage(msgRefNotFound, r, "spec.host", "host", dr.Host))
		}
		if dr.WorkloadSelector != nil {
			continue // not merged with others
		}
		for i, s := range dr.Subsets {
			key := fq + "+" + s.Name
			if first, dup := firstSubset[key]; dup && first != r {
				out = append(out, newMessage(msgDuplicateSubset, r, fmt.Sprintf("spec.subsets[%d].name", i), s.Name, fq, first.Namespace+"/"+first.Name))
				continue
			}
			firstSubset[key] = r
		}
	}
	return out
}

// drCredentials reports tls.credentialName Secrets that exist in no
// namespace (IST0101), when the analyzed config knows its Secrets.
// Which namespace counts depends on the proxy that uses the rule (its
// own), so a Secret anywhere is enough here; weft x describe tells per
// proxy.
func drCredentials(ix *index, r *Resource, dr *networking.DestinationRule) []*Message {
	if !ix.knowsSecrets() {
		return nil
	}
	var out []*Message
	check := func(tls *networking.ClientTLSSettings, path string) {
		name := tls.GetCredentialName()
		if name == "" {
			return
		}
		for k := range ix.secrets {
			if _, n, _ := strings.Cut(k, "/"); n == name {
				return
			}
		}
		out = append(out, newMessage(msgRefNotFound, r, path+".tls.credentialName", "credentialName", name))
	}
	policy := func(tp *networking.TrafficPolicy, path string) {
		check(tp.GetTls(), path)
		for i, pl := range tp.GetPortLevelSettings() {
			check(pl.GetTls(), fmt.Sprintf("%s.portLevelSettings[%d]", path, i))
		}
	}
	policy(dr.TrafficPolicy, "spec.trafficPolicy")
	for i, ss := range dr.Subsets {
		policy(ss.GetTrafficPolicy(), fmt.Sprintf("spec.subsets[%d].trafficPolicy", i))
	}
	return out
}

// knowsSecrets reports whether a credentialName missing from the set is
// missing from the world: the set is complete for referenced Secrets (the
// Kubernetes source), or holds some Secret (a config directory that keeps
// its Secrets beside the config).
func (ix *index) knowsSecrets() bool { return ix.secretsComplete || len(ix.secrets) > 0 }
