package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// typeSet is one proxy's output prepared for the cache: a content hash
// per type (unchanged content keeps its version, so it is not re-sent)
// and, per type, the resources with their encodings and hashes (delta xDS
// sends only changed resources). For an output of translate.Cache the
// per-resource lists are only built (fill) when the interner does not
// hold a list of that version yet; version maps likewise.
type typeSet struct {
	lists      map[string]*encodedList
	fill       map[string]func() *encodedList
	versions   map[string]string
	versionMap map[string]map[string]string
	res        map[string]cachev3.Resources // set by interner.share
	plain      map[string]map[string]types.Resource
	all        map[string]*sotwAll
}

// encodedList is the resources of one type, in name order, with their
// names, content hashes, delta versions and pre-encoded wire forms.
type encodedList struct {
	names  []string
	items  []types.Resource
	wire   []types.Resource // items as *encoded, for the cache
	sums   [][32]byte
	hashes []string
}

func (l *encodedList) add(name string, r types.Resource, rs *resourceSum) {
	l.names = append(l.names, name)
	l.items = append(l.items, r)
	l.wire = append(l.wire, rs.wire)
	l.sums = append(l.sums, rs.sum)
	l.hashes = append(l.hashes, rs.version)
}

// list returns the per-resource list of type t, building it if needed.
func (ts *typeSet) list(t string) *encodedList {
	if f := ts.fill[t]; f != nil {
		ts.lists[t] = f()
		delete(ts.fill, t)
	}
	if ts.lists[t] == nil {
		ts.lists[t] = &encodedList{}
	}
	return ts.lists[t]
}

const (
	clusterType  = resource.ClusterType
	endpointType = resource.EndpointType
	listenerType = resource.ListenerType
	routeType    = resource.RouteType
	secretType   = resource.SecretType
)

// byType lists an output's resources per type.
func byType(out *translate.Output) map[string][]types.Resource {
	m := map[string][]types.Resource{}
	for _, r := range out.Clusters {
		m[clusterType] = append(m[clusterType], r)
	}
	for _, r := range out.Endpoints {
		m[endpointType] = append(m[endpointType], r)
	}
	for _, r := range out.Listeners {
		m[listenerType] = append(m[listenerType], r)
	}
	for _, r := range out.Routes {
		m[routeType] = append(m[routeType], r)
	}
	for _, r := range out.Secrets {
		m[secretType] = append(m[secretType], r)
	}
	return m
}

// encoder encodes resources deterministically, reusing one buffer.
type encoder struct {
	g   *generation
	buf []byte
}

// encode returns r's hash, delta version and wire form; g (may be nil)
// keeps them for shared resources, so each is encoded once per generation.
func (e *encoder) encode(t string, r types.Resource) (*resourceSum, error) {
	if e.g != nil {
		if v, ok := e.g.sums.Load(r); ok {
			return v.(*resourceSum), nil
		}
	}
	var err error
	e.buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(e.buf[:0], r)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", ShortType(t), err)
	}
	rs := &resourceSum{sum: sha256.Sum256(e.buf)}
	rs.version = hex.EncodeToString(rs.sum[:8])
	rs.wire = &encoded{Message: r, name: cachev3.GetResourceName(r), bytes: append([]byte(nil), e.buf...)}
	if e.g.shared(r) {
		e.g.sums.Store(r, rs)
	}
	return rs, nil
}

// encodeAll encodes a list of one type and hashes names and contents into h.
func (e *encoder) encodeAll(t string, rs []types.Resource, h hash.Hash) (*encodedList, error) {
	l := &encodedList{}
	sep := []byte{0}
	for _, r := range rs {
		s, err := e.encode(t, r)
		if err != nil {
			return nil, err
		}
		l.add(s.wire.name, r, s)
		h.Write([]byte(s.wire.name))
		h.Write(sep)
		h.Write(s.sum[:])
	}
	return l, nil
}

// versions hashes an output (g may be nil: nothing is kept).
func (g *generation) versions(out *translate.Output) (*typeSet, error) {
	if shared, own := out.Layers(); shared != nil && own != nil && g != nil {
		return g.layeredVersions(shared, own)
	}
	ts := &typeSet{lists: map[string]*encodedList{}, versions: map[string]string{}, versionMap: map[string]map[string]string{}, res: map[string]cachev3.Resources{}, plain: map[string]map[string]types.Resource{}, all: map[string]*sotwAll{}}
	e := &encoder{g: g}
	items := byType(out)
	for _, t := range Types {
		th := sha256.New()
		l, err := e.encodeAll(t, items[t], th)
		if err != nil {
			return nil, err
		}
		ts.lists[t] = l
		ts.versions[t] = hex.EncodeToString(th.Sum(nil))[:12]
	}
	return ts, nil
}

// partSums is a shared part of translate.Cache output, encoded and hashed
// once per generation: per type its list and a digest of it.
type partSums struct {
	once   sync.Once
	err    error
	lists  map[string]*encodedList
	digest map[string][]byte
}

func (g *generation) part(shared *translate.Output) (*partSums, error) {
	v, _ := g.parts.LoadOrStore(shared, &partSums{})
	ps := v.(*partSums)
	ps.once.Do(func() {
		ps.lists, ps.digest = map[string]*encodedList{}, map[string][]byte{}
		e := &encoder{g: g}
		items := byType(shared)
		for _, t := range Types {
			th := sha256.New()
			l, err := e.encodeAll(t, items[t], th)
			if err != nil {
				ps.err = err
				return
			}
			ps.lists[t], ps.digest[t] = l, th.Sum(nil)
		}
	})
	return ps, ps.err
}

// layeredVersions hashes shared (once per generation) and own (per
// proxy): a type's version is a hash of the shared part's digest and the
// own resources. The merged per-resource lists are built only on demand.
func (g *generation) layeredVersions(shared, own *translate.Output) (*typeSet, error) {
	ps, err := g.part(shared)
	if err != nil {
		return nil, err
	}
	ts := &typeSet{lists: map[string]*encodedList{}, fill: map[string]func() *encodedList{},
		versions: map[string]string{}, versionMap: map[string]map[string]string{}, res: map[string]cachev3.Resources{}, plain: map[string]map[string]types.Resource{}, all: map[string]*sotwAll{}}
	e := &encoder{g: g}
	items := byType(own)
	for _, t := range Types {
		th := sha256.New()
		th.Write([]byte("layered\x00"))
		th.Write(ps.digest[t])
		ol, err := e.encodeAll(t, items[t], th)
		if err != nil {
			return nil, err
		}
		ts.versions[t] = hex.EncodeToString(th.Sum(nil))[:12]
		sl := ps.lists[t]
		if len(ol.items) == 0 {
			ts.lists[t] = sl // read-only: shared by every proxy of the part
			continue
		}
		ts.fill[t] = func() *encodedList { return mergeLists(sl, ol) }
	}
	return ts, nil
}

// mergeLists merges two name-ordered lists (translate.Cache's order: on
// equal names the shared one first).
func mergeLists(a, b *encodedList) *encodedList {
	out := &encodedList{}
	i, j := 0, 0
	take := func(l *encodedList, k int) {
		out.names = append(out.names, l.names[k])
		out.items = append(out.items, l.items[k])
		out.wire = append(out.wire, l.wire[k])
		out.sums = append(out.sums, l.sums[k])
		out.hashes = append(out.hashes, l.hashes[k])
	}
	for i < len(a.names) || j < len(b.names) {
		if j < len(b.names) && (i == len(a.names) || b.names[j] < a.names[i]) {
			take(b, j)
			j++
		} else {
			take(a, i)
			i++
		}
	}
	return out
}

// versionMapOf builds the per-resource version map of one type.
func (ts *typeSet) versionMapOf(t string) map[string]string {
	l := ts.list(t)
	vm := make(map[string]string, len(l.names))
	for i, n := range l.names {
		vm[n] = l.hashes[i]
	}
	return vm
}

// snapshot builds the cache snapshot of a typeSet.
func (ts *typeSet) snapshot() *servedSnapshot {
	cs := &servedSnapshot{}
	for i, t := range Types {
		res, ok := ts.res[t]
		if !ok {
			res = cachev3.NewResources(ts.versions[t], ts.list(t).wire)
		}
		if ts.versionMap[t] == nil {
			ts.versionMap[t] = ts.versionMapOf(t)
		}
		plain := ts.plain[t]
		if plain == nil {
			plain = plainResources(res)
		}
		all := ts.all[t]
		if all == nil {
			all = &sotwAll{}
		}
		cs.types[i] = servedType{version: res.Version, items: res.Items, plain: plain, versionMap: ts.versionMap[t], list: ts.list(t), all: all}
	}
	return cs
}

// servedSnapshot is one proxy's config as the go-control-plane cache reads
// it. Its maps are the interner's, shared by every proxy with the same
// type version, and only read by the cache. (cachev3.Snapshot builds a new
// map in GetResources, which the cache calls for every ACK of every
// proxy: 7% of the bytes a push allocated at 1,000 services × 2,000
// proxies.)
type servedSnapshot struct {
	types [5]servedType // in the order of Types
}

type servedType struct {
	version    string
	items      map[string]types.ResourceWithTTL
	plain      map[string]types.Resource
	versionMap map[string]string
	list       *encodedList // name order
	all        *sotwAll     // the list as Anys, built on first use
}

var _ cachev3.ResourceSnapshot = (*servedSnapshot)(nil)

func (s *servedSnapshot) typ(t string) *servedType {
	for i, u := range Types {
		if u == t {
			return &s.types[i]
		}
	}
	return nil
}

// GetVersion is the type's version ("" for a type not served).
func (s *servedSnapshot) GetVersion(t string) string {
	if st := s.typ(t); st != nil {
		return st.version
	}
	return ""
}

// GetResourcesAndTTL returns the type's resources by name (shared: read only).
func (s *servedSnapshot) GetResourcesAndTTL(t string) map[string]types.ResourceWithTTL {
	if st := s.typ(t); st != nil {
		return st.items
	}
	return nil
}

// GetResources returns the type's resources by name (shared: read only).
func (s *servedSnapshot) GetResources(t string) map[string]types.Resource {
	if st := s.typ(t); st != nil {
		return st.plain
	}
	return nil
}

// ConstructVersionMap does nothing: the version maps are built with the set.
func (s *servedSnapshot) ConstructVersionMap() error { return nil }

// GetVersionMap returns the type's per-resource versions (shared: read only).
func (s *servedSnapshot) GetVersionMap(t string) map[string]string {
	if st := s.typ(t); st != nil {
		return st.versionMap
	}
	return nil
}

func plainResources(res cachev3.Resources) map[string]types.Resource {
	m := make(map[string]types.Resource, len(res.Items))
	for n, r := range res.Items {
		m[n] = r.Resource
	}
	return m
}
