package translate

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// exportedTo applies Istio's exportTo: empty or "*" is everywhere, "." the
// owner's namespace, anything else a namespace name.
func exportedTo(exportTo []string, owner, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if owner == ns {
				return true
			}
		case "~":
		default:
			if e == ns {
				return true
			}
		}
	}
	return false
}

// resolveHost expands a short name the way Istio does: a name without dots
// is a Kubernetes service in the config's namespace. Wildcards and names with
// dots are taken as written.
func (b *builder) resolveHost(host, ns string) string {
	if host == "" || strings.HasPrefix(host, "*") || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc." + b.domainSuffix()
}

// hostMatches reports whether pattern (possibly "*" or "*.suffix") covers host.
func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		if strings.HasPrefix(host, "*.") {
			return strings.HasSuffix(host[1:], pattern[1:])
		}
		return strings.HasSuffix(host, pattern[1:])
	}
	return pattern == host
}

// hostsIntersect reports whether two host patterns share any host.
func hostsIntersect(a, b string) bool { return hostMatches(a, b) || hostMatches(b, a) }

// labelsMatch reports whether every selector label is in labels.
func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// byCreation orders config the way Istio resolves conflicts: oldest first,
// then namespace and name.
func byCreation[T any](items []T, meta func(T) *metav1.ObjectMeta) []T {
	out := append([]T(nil), items...)
	sort.SliceStable(out, func(i, j int) bool {
		a, c := meta(out[i]), meta(out[j])
		if !a.CreationTimestamp.Equal(&c.CreationTimestamp) {
			return a.CreationTimestamp.Before(&c.CreationTimestamp)
		}
		if a.Namespace != c.Namespace {
			return a.Namespace < c.Namespace
		}
		return a.Name < c.Name
	})
	return out
}

// virtualServices returns the VirtualServices visible to the proxy, in
// Istio's precedence order, skipping delegates (VS without hosts).
func (b *builder) virtualServices() []*networkingv1.VirtualService {
	if b.vsCache != nil {
		return *b.vsCache
	}
	out := b.sortedVirtualServices()
	b.vsCache = &out
	return out
}

func (b *builder) sortedVirtualServices() []*networkingv1.VirtualService {
	var out []*networkingv1.VirtualService
	for _, vs := range b.snap.VirtualServices {
		if vs == nil || len(vs.Spec.Hosts) == 0 {
			continue
		}
		if !exportedTo(vs.Spec.ExportTo, vs.Namespace, b.p.Meta.Namespace) {
			continue
		}
		out = append(out, vs)
	}
	return byCreation(out, func(v *networkingv1.VirtualService) *metav1.ObjectMeta { return &v.ObjectMeta })
}

// appliesToMesh reports whether a VS (or a match with gateways) binds to
// sidecars: no gateways, or the reserved name "mesh".
func appliesToMesh(gateways []string) bool {
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// sidecarVirtualService returns the VS that routes host for sidecars. Istio
// does not merge VirtualServices for sidecars: the first (oldest, then by
// namespace/name) whose host matches wins; an exact host beats a wildcard.
func (b *builder) sidecarVirtualService(host string) *networkingv1.VirtualService {
	var wildcard *networkingv1.VirtualService
	wildLen := -1
	for _, vs := range b.virtualServices() {
		if !appliesToMesh(vs.Spec.Gateways) {
			continue
		}
		for _, h := range vs.Spec.Hosts {
			h = b.resolveHost(h, vs.Namespace)
			if h == host {
				return vs
			}
			if hostMatches(h, host) && len(h) > wildLen {
				wildcard, wildLen = vs, len(h)
			}
		}
	}
	return wildcard
}

// delegate finds a delegate VirtualService (one without hosts) by name.
func (b *builder) delegate(d *networking.Delegate, rootNS string) *networkingv1.VirtualService {
	ns := d.GetNamespace()
	if ns == "" {
		ns = rootNS
	}
	for _, vs := range b.snap.VirtualServices {
		if vs != nil && vs.Name == d.GetName() && vs.Namespace == ns && len(vs.Spec.Hosts) == 0 {
			if !exportedTo(vs.Spec.ExportTo, vs.Namespace, rootNS) {
				return nil
			}
			return vs
		}
	}
	return nil
}
