package translate

import (
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DestinationRules combine as in Istio (pilot/pkg/model/push_context.go,
// setDestinationRules and mergeDestinationRule; sidecar.go DestinationRule):
//
//   - Rules are taken in order: those with a workloadSelector first, then
//     by creation time, name and namespace.
//   - Within one namespace, rules for the same host (as written, after
//     short-name expansion) merge into the first: subsets are concatenated,
//     a subset name already present is ignored, and the first rule with a
//     top-level trafficPolicy keeps it. Rules merge only when their exportTo
//     sets are equal; a rule whose exportTo is a strict superset is merged
//     and also kept on its own; otherwise it stays separate. Rules with
//     different workloadSelectors stay separate. A rule with a selector is
//     never exported beyond its namespace.
//   - A proxy looks in its own namespace first (in the root namespace, at
//     the root namespace's private rules), then at the rules the service's
//     namespace exports to it, then at those the root namespace exports to
//     it. An exact host beats a wildcard; the longest wildcard wins.
//   - Of the rules found for a host, one whose selector matches the proxy
//     (and lives in the proxy's namespace) wins over one without selector.

// mergedRule is one consolidated DestinationRule.
type mergedRule struct {
	spec      *networking.DestinationRule // merged copy; never the snapshot's
	namespace string
	exportTo  map[string]bool // empty: the mesh default
	from      []string        // namespace/name of every rule merged in
}

// drSet holds the consolidated rules of one namespace's pool, by host.
type drSet struct {
	specific map[string][]*mergedRule
	wildcard map[string][]*mergedRule
}

// drIndex is every DestinationRule of a snapshot, consolidated.
type drIndex struct {
	local     map[string]*drSet // rules visible inside their own namespace
	exported  map[string]*drSet // rules exported beyond their namespace
	rootLocal *drSet            // the root namespace's private rules
	root      string
}

func newDRSet() *drSet {
	return &drSet{specific: map[string][]*mergedRule{}, wildcard: map[string][]*mergedRule{}}
}

// destinationRules consolidates the snapshot's rules (once per builder).
func (b *builder) destinationRules() *drIndex {
	if b.drIndex != nil {
		return b.drIndex
	}
	ix := &drIndex{local: map[string]*drSet{}, exported: map[string]*drSet{}, rootLocal: newDRSet(), root: b.rootNamespace()}
	var drs []*networkingv1.DestinationRule
	for _, dr := range b.snap.DestinationRules {
		if dr != nil {
			drs = append(drs, dr)
		}
	}
	drs = byCreation(drs, func(d *networkingv1.DestinationRule) *metav1.ObjectMeta { return &d.ObjectMeta })
	sort.SliceStable(drs, func(i, j int) bool {
		return drs[i].Spec.WorkloadSelector != nil && drs[j].Spec.WorkloadSelector == nil
	})
	defaultPrivate := false
	for _, e := range b.mesh.GetDefaultDestinationRuleExportTo() {
		if e == "." {
			defaultPrivate = true
		}
	}
	for _, dr := range drs {
		exportTo := map[string]bool{}
		if dr.Spec.WorkloadSelector == nil {
			for _, e := range dr.Spec.ExportTo {
				exportTo[e] = true
			}
		} else {
			exportTo["."] = true
		}
		ns := dr.Namespace
		host := b.resolveHost(dr.Spec.Host, ns)
		if len(exportTo) == 0 || exportTo["*"] || exportTo["."] || exportTo[ns] {
			if ix.local[ns] == nil {
				ix.local[ns] = newDRSet()
			}
			ix.local[ns].merge(host, dr, exportTo)
		}
		private := (len(exportTo) == 0 && defaultPrivate) ||
			(len(exportTo) == 1 && (exportTo["."] || exportTo[ns]))
		switch {
		case !private:
			if ix.exported[ns] == nil {
				ix.exported[ns] = newDRSet()
			}
			ix.exported[ns].merge(host, dr, exportTo)
		case ns == ix.root:
			ix.rootLocal.merge(host, dr, exportTo)
		}
	}
	b.drIndex = ix
	return ix
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func supersetOf(a, b map[string]bool) bool {
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

// merge adds dr (for host) to the set, merging it into the rules already
// there for the same host as Istio's mergeDestinationRule does.
func (s *drSet) merge(host string, dr *networkingv1.DestinationRule, exportTo map[string]bool) {
	pool := s.specific
	if strings.HasPrefix(host, "*") {
		pool = s.wildcard
	}
	rule := &dr.Spec
	list, exists := pool[host]
	if !exists {
		pool[host] = []*mergedRule{newMergedRule(dr, exportTo)}
		return
	}
	separate := true
	for _, m := range list {
		switch {
		case sameSet(exportTo, m.exportTo):
			separate = false
		case len(m.exportTo) > 0 && supersetOf(exportTo, m.exportTo):
			separate = true
		default:
			separate = true
			continue
		}
		existing := m.spec
		bothWithout := rule.WorkloadSelector == nil && existing.WorkloadSelector == nil
		bothWith := rule.WorkloadSelector != nil && existing.WorkloadSelector != nil
		same := sameLabels(existing.GetWorkloadSelector().GetMatchLabels(), rule.GetWorkloadSelector().GetMatchLabels())
		if bothWith && !same {
			separate = true
			continue
		}
		if bothWithout || (bothWith && same) {
			separate = false
		}
		merged := proto.Clone(existing).(*networking.DestinationRule)
		m.spec = merged
		m.from = append(m.from, dr.Namespace+"/"+dr.Name)
		names := map[string]bool{}
		for _, ss := range merged.Subsets {
			names[ss.GetName()] = true
		}
		for _, ss := range rule.Subsets {
			if !names[ss.GetName()] {
				// A duplicate subset name is ignored: the first rule's wins.
				merged.Subsets = append(merged.Subsets, ss)
				names[ss.GetName()] = true
			}
		}
		if merged.TrafficPolicy == nil && rule.TrafficPolicy != nil {
			merged.TrafficPolicy = rule.TrafficPolicy
		}
	}
	if separate {
		pool[host] = append(pool[host], newMergedRule(dr, exportTo))
	}
}

func newMergedRule(dr *networkingv1.DestinationRule, exportTo map[string]bool) *mergedRule {
	return &mergedRule{spec: &dr.Spec, namespace: dr.Namespace, exportTo: exportTo, from: []string{dr.Namespace + "/" + dr.Name}}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// lookup is Istio's MostSpecificHostMatch: the exact host, else the most
// specific wildcard covering it (longest; ties by name for determinism).
func (s *drSet) lookup(host string) []*mergedRule {
	if s == nil {
		return nil
	}
	if strings.HasPrefix(host, "*") {
		if l, ok := s.wildcard[host]; ok {
			return l
		}
		host = host[1:]
	} else if l, ok := s.specific[host]; ok {
		return l
	}
	best := ""
	for h := range s.wildcard {
		if !strings.HasSuffix(host, h[1:]) {
			continue
		}
		if best == "" || len(h) > len(best) || (len(h) == len(best) && h < best) {
			best = h
		}
	}
	if best == "" {
		return nil
	}
	return s.wildcard[best]
}

// exportedTo filters the exported rules of ns to those visible to client.
func (ix *drIndex) exportedTo(ns, host, client string) []*mergedRule {
	var out []*mergedRule
	for _, m := range ix.exported[ns].lookup(host) {
		if len(m.exportTo) == 0 || m.exportTo["*"] || m.exportTo[client] {
			out = append(out, m)
		}
	}
	return out
}

// rulesFor returns the consolidated rules that may apply to host for a
// proxy in client namespace (Istio's PushContext.destinationRule).
func (ix *drIndex) rulesFor(host, svcNamespace, client string) []*mergedRule {
	if client != ix.root {
		if l := ix.local[client].lookup(host); l != nil {
			return l
		}
	} else if l := ix.rootLocal.lookup(host); l != nil {
		return l
	}
	if svcNamespace != "" {
		if l := ix.exportedTo(svcNamespace, host, client); len(l) > 0 {
			return l
		}
	}
	return ix.exportedTo(ix.root, host, client)
}

// destinationRule returns the merged DestinationRule that applies to host
// (a service of svcNamespace) for this proxy, nil if none: a rule selecting
// the proxy's workload in its own namespace, else the last without selector.
func (b *builder) destinationRule(host, svcNamespace string) *networking.DestinationRule {
	key := host + "|" + svcNamespace
	if dr, ok := b.drByHost[key]; ok {
		return dr
	}
	var catchAll *networking.DestinationRule
	var picked *networking.DestinationRule
	for _, m := range b.destinationRules().rulesFor(host, svcNamespace, b.p.Meta.Namespace) {
		ws := m.spec.GetWorkloadSelector()
		if ws == nil {
			catchAll = m.spec
			continue
		}
		if m.namespace == b.p.Meta.Namespace && labelsMatch(ws.GetMatchLabels(), b.p.Meta.Labels) {
			picked = m.spec
			break
		}
	}
	if picked == nil {
		picked = catchAll
	}
	b.drByHost[key] = picked
	return picked
}
