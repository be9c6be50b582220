package xds

import (
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// internKey identifies a resource by type and encoded content.
type internKey struct {
	typ string
	sum [32]byte
}

// interner shares identical resources between proxies: most of a
// sidecar's outbound config is the same for every proxy of a namespace,
// and keeping one copy per proxy would cost gigabytes in a large mesh.
// Shared resources are never modified (translation builds new ones).
type interner struct {
	mu sync.Mutex
	m  map[internKey]*internEntry
}

type internEntry struct {
	r    types.Resource
	refs int
}

func newInterner() *interner { return &interner{m: map[internKey]*internEntry{}} }

// share replaces every item of set by its shared copy and returns the keys
// now referenced, to be released when the proxy's config is replaced.
func (in *interner) share(set *typeSet) []internKey {
	in.mu.Lock()
	defer in.mu.Unlock()
	var keys []internKey
	for _, t := range Types {
		for i, r := range set.items[t] {
			k := internKey{typ: t, sum: set.sums[t][i]}
			e := in.m[k]
			if e == nil {
				e = &internEntry{r: r}
				in.m[k] = e
			}
			e.refs++
			set.items[t][i] = e.r
			keys = append(keys, k)
		}
	}
	return keys
}

func (in *interner) release(keys []internKey) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, k := range keys {
		if e := in.m[k]; e != nil {
			if e.refs--; e.refs <= 0 {
				delete(in.m, k)
			}
		}
	}
}

// size is the number of distinct resources held.
func (in *interner) size() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.m)
}

// output rebuilds a translate.Output from (shared) items.
func (set *typeSet) output() *translate.Output {
	out := &translate.Output{}
	for _, r := range set.items[clusterType] {
		out.Clusters = append(out.Clusters, r.(*clusterv3.Cluster))
	}
	for _, r := range set.items[endpointType] {
		out.Endpoints = append(out.Endpoints, r.(*endpointv3.ClusterLoadAssignment))
	}
	for _, r := range set.items[listenerType] {
		out.Listeners = append(out.Listeners, r.(*listenerv3.Listener))
	}
	for _, r := range set.items[routeType] {
		out.Routes = append(out.Routes, r.(*routev3.RouteConfiguration))
	}
	for _, r := range set.items[secretType] {
		out.Secrets = append(out.Secrets, r.(*tlsv3.Secret))
	}
	return out
}
