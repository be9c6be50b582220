package translate

import (
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// Cache translates one snapshot for many proxies, sharing what does not
// depend on the individual proxy. A sidecar's outbound side (clusters,
// assignments, outbound route configurations, virtualOutbound, secrets)
// depends only on its namespace, its mode (capture, explicit, explicit
// without a proxy port) and which of the snapshot's label selectors match
// its labels (DestinationRule workloadSelector, VirtualService
// sourceLabels, Telemetry selector, Sidecar workloadSelector, which with
// the namespace fixes the Sidecar scoping it); it is built once per such key. The
// inbound side and the explicit proxy listener (bound to the proxy's IP)
// are built per proxy. Routers and proxyless gRPC clients are translated
// by Build.
//
// Cache.Build returns exactly what Build returns (a test compares them on
// every golden case). Resources in its Output are shared between proxies:
// callers must not modify them. Methods are safe for concurrent use.
type Cache struct {
	snap           *model.Snapshot
	selectors      []map[string]string
	failoverLabels []string // label names any failoverPriority matches on

	mu      sync.Mutex
	entries map[string]*cacheEntry
	shared  sync.Map // resource pointer → *[]checkItem (nil until checked)
	parts   sync.Map // shared *Output → *partIndex
	filters sync.Map // network filter check key → []checkItem (networkFilter)
}

type cacheEntry struct {
	once sync.Once
	out  *Output
}

// NewCache returns a Cache for snap.
func NewCache(snap *model.Snapshot) *Cache {
	c := &Cache{snap: snap, entries: map[string]*cacheEntry{}}
	if snap != nil {
		c.selectors = labelSelectors(snap)
		c.failoverLabels = failoverLabels(snap)
	}
	return c
}

// Snapshot returns the snapshot the cache translates.
func (c *Cache) Snapshot() *model.Snapshot { return c.snap }

// Build translates the snapshot for p; see Cache.
func (c *Cache) Build(p *model.Proxy) *Output {
	if c.snap == nil || p == nil || p.Meta == nil || p.IsGRPC() || p.Meta.Type == node.Router {
		return Build(c.snap, p)
	}
	c.mu.Lock()
	key := c.key(p.Meta)
	e := c.entries[key]
	if e == nil {
		e = &cacheEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.out = c.outbound(p) })
	if e.out == nil {
		// The shared build panicked for an earlier proxy; translating this
		// one alone reports the same failure to its caller.
		return Build(c.snap, p)
	}
	b := newProxyBuilder(c.snap, p)
	b.buildInbound()
	b.decorateInbound()
	if !p.Meta.Capture && validProxyPort(p.Meta.ProxyPort) {
		b.listeners[explicitProxyName] = b.explicitListener()
	}
	b.applySecurity()
	if len(b.mesh.GetExtensionProviders()) > 0 {
		// Telemetry providers may reference outbound clusters (a tracing
		// collector): let the per-proxy side see them, without emitting
		// them twice.
		var added []string
		for _, cl := range e.out.Clusters {
			if _, ok := b.clusters[cl.GetName()]; !ok {
				b.clusters[cl.GetName()] = cl
				added = append(added, cl.GetName())
			}
		}
		b.applyTelemetry()
		for _, n := range added {
			delete(b.clusters, n)
		}
	} else {
		b.applyTelemetry()
	}
	return merge(e.out, b.output())
}

// Shared reports whether r is a resource shared between proxies (built
// once per key); per-proxy resources report false.
func (c *Cache) Shared(r any) bool {
	_, ok := c.shared.Load(r)
	return ok
}

// key names the outbound configuration p gets: namespace, mode and the
// selectors its labels match.
func (c *Cache) key(m *node.Meta) string {
	var k strings.Builder
	k.WriteString(m.Namespace)
	k.WriteByte(0)
	switch {
	case m.Capture:
		k.WriteByte('c')
	case validProxyPort(m.ProxyPort):
		k.WriteByte('e')
	default:
		k.WriteByte('n')
	}
	if m.MeshTLS {
		// Auto mTLS: clusters carry transport_socket_matches.
		k.WriteByte('m')
	}
	for _, sel := range c.selectors {
		if labelsMatch(sel, m.Labels) {
			k.WriteByte('1')
		} else {
			k.WriteByte('0')
		}
	}
	// Locality load balancing orders endpoints by the proxy's locality
	// and the labels failoverPriority names.
	k.WriteByte(0)
	k.WriteString(m.Locality)
	for _, l := range c.failoverLabels {
		k.WriteByte(0)
		k.WriteString(m.Labels[l])
	}
	if len(c.snap.Mesh.GetExtensionProviders()) > 0 {
		// Telemetry providers name the workload (a tracing service name
		// from its canonical labels or name) in outbound HCMs.
		for _, v := range []string{m.Name, m.Labels["service.istio.io/canonical-name"], m.Labels["app.kubernetes.io/name"], m.Labels["app"]} {
			k.WriteByte(0)
			k.WriteString(v)
		}
	}
	return k.String()
}

// outbound builds the proxy-independent part of a sidecar's output, in
// the order Build uses, and registers its resources as shared.
func (c *Cache) outbound(p *model.Proxy) *Output {
	b := newBuilder(c.snap, p)
	b.buildClusters()
	if p.Meta.Capture {
		b.buildCaptureOutbound()
	} else {
		b.buildExplicitOutbound()
		delete(b.listeners, explicitProxyName) // bound to the proxy's IP
	}
	b.buildBoundEgress()
	b.applyTelemetry()
	o := b.output()
	attemptCounts(o.Routes)
	for _, r := range o.Clusters {
		c.shared.Store(any(r), (*[]checkItem)(nil))
	}
	for _, r := range o.Endpoints {
		c.shared.Store(any(r), (*[]checkItem)(nil))
	}
	for _, r := range o.Listeners {
		c.shared.Store(any(r), (*[]checkItem)(nil))
	}
	for _, r := range o.Routes {
		c.shared.Store(any(r), (*[]checkItem)(nil))
	}
	for _, r := range o.Secrets {
		c.shared.Store(any(r), (*[]checkItem)(nil))
	}
	return o
}

// labelSelectors lists, without duplicates, every non-empty label
// selector that outbound translation evaluates against a proxy's labels.
func labelSelectors(snap *model.Snapshot) []map[string]string {
	seen := map[string]bool{}
	var out []map[string]string
	add := func(sel map[string]string) {
		if len(sel) == 0 {
			return
		}
		keys := sortedKeys(sel)
		var k strings.Builder
		for _, n := range keys {
			k.WriteString(n)
			k.WriteByte('=')
			k.WriteString(sel[n])
			k.WriteByte(0)
		}
		if seen[k.String()] {
			return
		}
		seen[k.String()] = true
		out = append(out, sel)
	}
	for _, dr := range snap.DestinationRules {
		if dr != nil && dr.Spec.WorkloadSelector != nil {
			add(dr.Spec.WorkloadSelector.MatchLabels)
		}
	}
	for _, vs := range snap.VirtualServices {
		if vs == nil {
			continue
		}
		for _, hr := range vs.Spec.Http {
			for _, m := range hr.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
		for _, tr := range vs.Spec.Tcp {
			for _, m := range tr.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
		for _, tr := range vs.Spec.Tls {
			for _, m := range tr.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
	}
	for _, t := range snap.Telemetries {
		if t != nil {
			add(t.Spec.GetSelector().GetMatchLabels())
		}
	}
	// A Sidecar's selector decides which Sidecar scopes the proxy: what it
	// sees is a function of its namespace and these matches.
	for _, sc := range snap.Sidecars {
		if sc != nil && sc.Spec.WorkloadSelector != nil {
			add(sc.Spec.WorkloadSelector.Labels)
		}
	}
	return out
}

// merge combines two outputs with disjoint names, keeping name order.
func merge(a, b *Output) *Output {
	return &Output{
		shared:    a,
		own:       b,
		Listeners: mergeSorted(a.Listeners, b.Listeners, (*listenerv3.Listener).GetName),
		Routes:    mergeSorted(a.Routes, b.Routes, (*routev3.RouteConfiguration).GetName),
		Clusters:  mergeSorted(a.Clusters, b.Clusters, (*clusterv3.Cluster).GetName),
		Endpoints: mergeSorted(a.Endpoints, b.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName),
		Secrets:   mergeSorted(a.Secrets, b.Secrets, (*tlsv3.Secret).GetName),
	}
}

// When one side is empty the other is returned as it is, capped so that
// an append copies (the shared side is read by every proxy of its key).
func mergeSorted[T any](a, b []T, name func(T) string) []T {
	switch {
	case len(a)+len(b) == 0:
		return nil
	case len(b) == 0:
		return a[:len(a):len(a)]
	case len(a) == 0:
		return b[:len(b):len(b)]
	}
	out := make([]T, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if name(b[0]) < name(a[0]) {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// failoverLabels lists the label names (the "label" of "label=value")
// that any localityLbSetting.failoverPriority of the snapshot names.
func failoverLabels(snap *model.Snapshot) []string {
	seen := map[string]bool{}
	add := func(s *networking.LocalityLoadBalancerSetting) {
		for _, l := range s.GetFailoverPriority() {
			name, _, _ := strings.Cut(l, "=")
			seen[name] = true
		}
	}
	add(snap.Mesh.GetLocalityLbSetting())
	for _, dr := range snap.DestinationRules {
		if dr == nil {
			continue
		}
		tps := []*networking.TrafficPolicy{dr.Spec.TrafficPolicy}
		for _, ss := range dr.Spec.Subsets {
			tps = append(tps, ss.GetTrafficPolicy())
		}
		for _, tp := range tps {
			add(tp.GetLoadBalancer().GetLocalityLbSetting())
			for _, pl := range tp.GetPortLevelSettings() {
				add(pl.GetLoadBalancer().GetLocalityLbSetting())
			}
		}
	}
	return sortedKeys(seen)
}
