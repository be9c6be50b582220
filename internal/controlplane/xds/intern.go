package xds

import (
	"slices"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// internKey identifies a resource by type and encoded content.
type internKey struct {
	typ string
	sum [32]byte
}

// setKey identifies all resources of one type by their type version (a
// hash of every name and content): proxies with equal versions share one
// list and one delta version map.
type setKey struct {
	typ, version string
}

// interner shares identical resources between proxies: most of a
// sidecar's outbound config is the same for every proxy of a namespace,
// and keeping one copy per proxy would cost gigabytes in a large mesh
// (measured at 1,000 services, capture and explicit sidecars: 7.2 MiB of
// heap per proxy unshared, 0.2 MiB shared).
// Shared resources are never modified (translation builds new ones).
type interner struct {
	mu        sync.Mutex
	resources map[internKey]*internEntry // refs: sets holding it
	sets      map[setKey]*setEntry       // refs: proxies holding it
}

type internEntry struct {
	r, wire types.Resource
	refs    int
}

type setEntry struct {
	list *encodedList
	vm   map[string]string
	// res is the list as the go-control-plane cache indexes it (a map by
	// name, which the cache only reads): one per list, not per proxy.
	res   cachev3.Resources
	plain map[string]types.Resource // res without TTLs
	all   *sotwAll                  // list as Anys for SotW responses
	keys  []internKey
	refs  int
}

func newInterner() *interner {
	return &interner{resources: map[internKey]*internEntry{}, sets: map[setKey]*setEntry{}}
}

// share replaces set's per-type lists (and each resource in them) by
// shared copies and returns the keys now referenced, to be released when
// the proxy's config is replaced.
func (in *interner) share(set *typeSet) []setKey {
	in.mu.Lock()
	defer in.mu.Unlock()
	keys := make([]setKey, 0, len(Types))
	for _, t := range Types {
		sk := setKey{typ: t, version: set.versions[t]}
		keys = append(keys, sk)
		if se := in.sets[sk]; se != nil {
			se.refs++
			set.lists[t], set.versionMap[t], set.res[t], set.plain[t], set.all[t] = se.list, se.vm, se.res, se.plain, se.all
			delete(set.fill, t)
			continue
		}
		vm := set.versionMap[t]
		if vm == nil {
			vm = set.versionMapOf(t)
			set.versionMap[t] = vm
		}
		// Copied: the list may be a shared part's, read by other pushes.
		l := *set.list(t)
		l.items, l.wire = slices.Clone(l.items), slices.Clone(l.wire)
		set.lists[t] = &l
		se := &setEntry{list: &l, vm: vm, refs: 1}
		for i, r := range l.items {
			k := internKey{typ: t, sum: l.sums[i]}
			e := in.resources[k]
			if e == nil {
				e = &internEntry{r: r, wire: l.wire[i]}
				in.resources[k] = e
			}
			e.refs++
			l.items[i], l.wire[i] = e.r, e.wire
			se.keys = append(se.keys, k)
		}
		se.res = cachev3.NewResources(set.versions[t], l.wire)
		se.plain, se.all = plainResources(se.res), &sotwAll{}
		set.res[t], set.plain[t], set.all[t] = se.res, se.plain, se.all
		in.sets[sk] = se
	}
	return keys
}

func (in *interner) release(keys []setKey) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, sk := range keys {
		se := in.sets[sk]
		if se == nil {
			continue
		}
		if se.refs--; se.refs > 0 {
			continue
		}
		delete(in.sets, sk)
		for _, k := range se.keys {
			if e := in.resources[k]; e != nil {
				if e.refs--; e.refs <= 0 {
					delete(in.resources, k)
				}
			}
		}
	}
}

// size is the number of distinct resources held.
func (in *interner) size() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.resources)
}

// published returns set's per-type lists, in the order of Types.
func (set *typeSet) published() *[5]*encodedList {
	var ls [5]*encodedList
	for i, t := range Types {
		ls[i] = set.list(t)
	}
	return &ls
}

// output rebuilds a translate.Output from published (shared) lists.
func output(ls *[5]*encodedList) *translate.Output {
	out := &translate.Output{}
	for _, r := range ls[0].items {
		out.Clusters = append(out.Clusters, r.(*clusterv3.Cluster))
	}
	for _, r := range ls[1].items {
		out.Endpoints = append(out.Endpoints, r.(*endpointv3.ClusterLoadAssignment))
	}
	for _, r := range ls[2].items {
		out.Listeners = append(out.Listeners, r.(*listenerv3.Listener))
	}
	for _, r := range ls[3].items {
		out.Routes = append(out.Routes, r.(*routev3.RouteConfiguration))
	}
	for _, r := range ls[4].items {
		out.Secrets = append(out.Secrets, r.(*tlsv3.Secret))
	}
	return out
}
