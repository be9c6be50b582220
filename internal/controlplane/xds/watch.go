package xds

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// watchCache is the cache go-control-plane's server reads: it answers
// state-of-the-world and delta watches from each proxy's servedSnapshot,
// with the semantics of go-control-plane's snapshot cache (non-ADS mode: a
// request naming resources gets those that exist). The difference is the
// cost. The snapshot cache builds every response per proxy (a
// cached-resource record with two once-functions, a fresh Any and, for
// delta, a SHA-256 of each resource; a map of the names returned), and for
// delta it diffs every resource on every ACK, all under one lock for all
// proxies. Here a type version's resources are one slice of Anys (and of
// delta Resources) over the stored encodings (wire.go), built once and
// shared by every proxy holding that version; an ACK allocates nothing.
type watchCache struct {
	mu    sync.Mutex
	nodes map[string]*sotwNode
}

var _ cachev3.Cache = (*watchCache)(nil)

type sotwNode struct {
	snap    *servedSnapshot
	watches map[*sotwWatch]struct{}
	deltas  map[*deltaWatch]struct{}
	sent    [len(servedSnapshot{}.types)]sentNames // per type, in the order of Types
	dsent   [len(servedSnapshot{}.types)]deltaSent // per type, delta streams
}

// sentNames remembers which names a proxy's last wildcard response of a
// type returned (the hash of the list's names) and the returned-names map
// handed to go-control-plane with it: while the subscription still holds
// that map unchanged (go-control-plane only deletes from it), the proxy
// has every name of a list with that hash, so nothing is missing, without
// looking up every name (for 2,000 proxies x 4 types x 1,000 names, 8M
// map lookups per push: 15% of the control plane's CPU in a change).
type sentNames struct {
	m     map[string]string
	n     int
	names [32]byte // sotwAll.names of the list it was built from
	// list and version are what the last wildcard response brought the
	// proxy to (every resource of list): the base of a partial response.
	list    *encodedList
	version string
}

// partialType reports whether a state-of-the-world response of type t
// may carry only some resources. The xDS protocol requires the whole set
// in every Listener and Cluster response only: a client keeps the
// route configurations, assignments and secrets a response does not
// name (Envoy drops them when nothing references them any more), as in
// delta xDS. Istio sends only the changed assignments on an incremental
// EDS push the same way.
func partialType(t string) bool { return t != clusterType && t != listenerType }

// holds reports whether known is the remembered map, unchanged, built
// from a list whose names hash to names.
func (s *sentNames) holds(known map[string]string, names [32]byte) bool {
	return s != nil && s.m != nil && len(known) == s.n && s.names == names &&
		reflect.ValueOf(known).UnsafePointer() == reflect.ValueOf(s.m).UnsafePointer()
}

type sotwWatch struct {
	req *cachev3.Request
	sub cachev3.Subscription
	ch  chan cachev3.Response
}

type deltaWatch struct {
	req *cachev3.DeltaRequest
	sub cachev3.Subscription
	ch  chan cachev3.DeltaResponse
}

func newWatchCache() *watchCache { return &watchCache{nodes: map[string]*sotwNode{}} }

func (c *watchCache) node(id string) *sotwNode {
	n := c.nodes[id]
	if n == nil {
		n = &sotwNode{watches: map[*sotwWatch]struct{}{}, deltas: map[*deltaWatch]struct{}{}}
		c.nodes[id] = n
	}
	return n
}

// CreateWatch answers at once when the proxy lacks the current version
// (or a resource it subscribes to that exists), else waits for set.
func (c *watchCache) CreateWatch(r *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	id := r.GetNode().GetId()
	c.mu.Lock()
	n := c.node(id)
	if n.snap != nil {
		if resp := respond(n.snap, r, sub, false, n.sentFor(r.GetTypeUrl())); resp != nil {
			c.mu.Unlock()
			ch <- resp // a new channel with room for one: never blocks
			return func() {}, nil
		}
	}
	w := &sotwWatch{req: r, sub: sub, ch: ch}
	n.watches[w] = struct{}{}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(n.watches, w)
		c.mu.Unlock()
	}, nil
}

// CreateDeltaWatch answers at once when resources the proxy subscribes to
// changed or went away (or on a wildcard stream's first request), else
// waits for set.
func (c *watchCache) CreateDeltaWatch(r *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	id := r.GetNode().GetId()
	c.mu.Lock()
	n := c.node(id)
	rec := n.deltaFor(r.GetTypeUrl())
	if len(r.GetResourceNamesSubscribe())+len(r.GetResourceNamesUnsubscribe())+len(r.GetInitialResourceVersions()) > 0 {
		// The subscription changes: compare every name once.
		rec.expand(sub.ReturnedResources(), r.GetResourceNamesUnsubscribe())
		rec.forget()
	}
	if n.snap != nil {
		if resp := respondDelta(n.snap, r, sub, rec); resp != nil {
			c.mu.Unlock()
			// The server's channel has room for two per type and is
			// drained before each request is handled.
			ch <- resp
			return func() {}, nil
		}
	}
	w := &deltaWatch{req: r, sub: sub, ch: ch}
	n.deltas[w] = struct{}{}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(n.deltas, w)
		c.mu.Unlock()
	}, nil
}

// Fetch is REST xDS, which the callbacks refuse before it gets here.
func (c *watchCache) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, errors.New("REST xDS is not served")
}

// set publishes a proxy's snapshot and answers its open watches whose
// version changed.
func (c *watchCache) set(id string, snap *servedSnapshot) {
	c.mu.Lock()
	n := c.node(id)
	n.snap = snap
	// In the order of Types (clusters, assignments, listeners, routes,
	// secrets), as the xDS protocol asks of an ADS server so that nothing
	// references a resource the proxy does not have yet; the streams'
	// channels keep that order (delta, and SotW with ordered ADS).
	var sends [len(servedSnapshot{}.types)][]func()
	for w := range n.watches {
		if resp := respond(snap, w.req, w.sub, true, n.sentFor(w.req.GetTypeUrl())); resp != nil {
			delete(n.watches, w)
			i := typeIndex(w.req.GetTypeUrl())
			sends[i] = append(sends[i], func() { w.ch <- resp })
		}
	}
	for w := range n.deltas {
		if resp := respondDelta(snap, w.req, w.sub, n.deltaFor(w.req.GetTypeUrl())); resp != nil {
			delete(n.deltas, w)
			i := typeIndex(w.req.GetTypeUrl())
			sends[i] = append(sends[i], func() { w.ch <- resp })
		}
	}
	c.mu.Unlock()
	for _, byType := range sends {
		for _, send := range byType {
			send() // one response per watch; the channels have room
		}
	}
}

// typeIndex is t's place in Types; a type not served sorts last.
func typeIndex(t string) int {
	for i, u := range Types {
		if u == t {
			return i
		}
	}
	return len(Types) - 1
}

// clear forgets a proxy (its stream ended or was replaced).
func (c *watchCache) clear(id string) {
	c.mu.Lock()
	delete(c.nodes, id)
	c.mu.Unlock()
}

// sentFor is the node's record for type t (nil for a type not served).
func (n *sotwNode) sentFor(t string) *sentNames {
	for i, u := range Types {
		if u == t {
			return &n.sent[i]
		}
	}
	return nil
}

// deltaFor is the node's delta record for type t (nil for a type not served).
func (n *sotwNode) deltaFor(t string) *deltaSent {
	for i, u := range Types {
		if u == t {
			return &n.dsent[i]
		}
	}
	return nil
}

// respond returns the response a watch gets from snap, or nil when it
// waits: the version is the one the request ACKed and (unless onSet)
// every resource it subscribes to that exists was returned already.
// rec (may be nil) is the proxy's record of its last wildcard response.
func respond(snap *servedSnapshot, r *cachev3.Request, sub cachev3.Subscription, onSet bool, rec *sentNames) cachev3.Response {
	st := snap.typ(r.GetTypeUrl())
	if st == nil {
		st = &servedType{list: &encodedList{}, all: &sotwAll{}} // a type not served: none
	}
	all := st.all.get(st.list, r.GetTypeUrl())
	if r.GetVersionInfo() == st.version {
		if onSet {
			return nil
		}
		known := sub.ReturnedResources()
		missing := false
		if sub.IsWildcard() && rec.holds(known, all.names) {
			// Every name of this version was returned.
		} else if !sub.IsWildcard() {
			for name := range sub.SubscribedResources() {
				if _, ok := known[name]; !ok {
					if _, ok := st.items[name]; ok {
						missing = true
						break
					}
				}
			}
		} else {
			for name := range st.items {
				if _, ok := known[name]; !ok {
					missing = true
					break
				}
			}
		}
		if !missing {
			return nil
		}
	}
	resp := &sotwResponse{req: r, version: st.version}
	if len(r.GetResourceNames()) == 0 {
		known := sub.ReturnedResources()
		if d := wildcardDiff(st, all, r, sub, rec); d != nil {
			// Only what changed since the list the proxy ACKed.
			resp.resources = all.sotw.pick(d.changed)
			resp.returned = known
			*rec = sentNames{m: known, n: len(known), names: all.names, list: st.list, version: st.version}
			return resp
		}
		resp.resources = all.sotw.all()
		switch {
		case sub.IsWildcard() && rec.holds(known, all.names):
			resp.returned = known
			rec.list, rec.version = st.list, st.version
		case sub.IsWildcard() && rec != nil:
			// The names are in rec (by their hash); the subscription gets a
			// map of its own that stays empty: one with every name per proxy
			// and type was two thirds of the heap at 1,000 services x 2,000
			// proxies. Should the proxy name resources later, each looks
			// missing once and is sent again, which SotW allows.
			resp.returned = map[string]string{}
			*rec = sentNames{m: resp.returned, names: all.names, list: st.list, version: st.version}
		default:
			resp.returned = returned(known, st.list, nil)
		}
		return resp
	}
	want := make(map[string]bool, len(r.GetResourceNames()))
	for _, name := range r.GetResourceNames() {
		want[name] = true
	}
	keep := make([]bool, len(st.list.names))
	var idx []int
	for i, name := range st.list.names {
		if want[name] {
			keep[i] = true
			idx = append(idx, i)
		}
	}
	known := sub.ReturnedResources()
	if partialType(r.GetTypeUrl()) && r.GetErrorDetail() == nil && r.GetResponseNonce() != "" {
		// The returned map holds the content hash of each resource sent
		// (returned): send those the proxy does not hold as they are now.
		send := idx[:0:0]
		for _, i := range idx {
			if v, ok := known[st.list.names[i]]; !ok || v != st.list.hashes[i] {
				send = append(send, i)
			}
		}
		idx = send
	}
	resp.resources = all.sotw.pick(idx)
	resp.returned = returned(known, st.list, keep)
	return resp
}

// wildcardDiff is the difference a wildcard request may be answered
// with instead of the whole list (partialType), or nil: the request ACKs
// (no error) the version of the list rec says the proxy was last brought
// to, the subscription still holds the returned map of that response,
// and no resource went away (a state-of-the-world response cannot say
// so; the whole list is sent instead).
func wildcardDiff(st *servedType, all *sotwAll, r *cachev3.Request, sub cachev3.Subscription, rec *sentNames) *listDiff {
	if !partialType(r.GetTypeUrl()) || !sub.IsWildcard() || r.GetErrorDetail() != nil || r.GetResponseNonce() == "" ||
		rec == nil || rec.list == nil || r.GetVersionInfo() != rec.version {
		return nil
	}
	known := sub.ReturnedResources()
	if rec.m == nil || len(known) != rec.n || reflect.ValueOf(known).UnsafePointer() != reflect.ValueOf(rec.m).UnsafePointer() {
		return nil
	}
	d := all.diffFrom(rec.list, st.list)
	if len(d.removed) > 0 {
		return nil
	}
	return d
}

// returned is the map of names a response returns, each with its
// content hash (the subscription keeps it, and go-control-plane's server
// may delete from it, so it is per proxy; go-control-plane reads only the
// keys, a named request's next response sends only the resources whose
// hash changed). The previous map is reused when it is the same, so a
// push allocates none.
func returned(prev map[string]string, l *encodedList, keep []bool) map[string]string {
	n := 0
	same := true
	for i, name := range l.names {
		if keep != nil && !keep[i] {
			continue
		}
		n++
		if v, ok := prev[name]; !ok || v != l.hashes[i] {
			same = false
		}
	}
	if same && n == len(prev) && prev != nil {
		return prev
	}
	m := make(map[string]string, n)
	for i, name := range l.names {
		if keep == nil || keep[i] {
			m[name] = l.hashes[i]
		}
	}
	return m
}

// sotwAll is a type version's resources encoded once for the wire, built
// on the first response that needs them and shared by every proxy holding
// that version: the resources field of a DiscoveryResponse (every Any, in
// name order) and, for delta, of a DeltaDiscoveryResponse (every Resource
// with its version). A response carries these bytes as the message's
// unknown fields, which protobuf writes as they are (wireCodec sends them
// without a copy), so a push to 2,000 proxies encodes each list once
// instead of once per proxy (measured: 0.84 ms per CDS response at 1,000
// services before, see BenchmarkSendResponse).
type sotwAll struct {
	once  sync.Once
	index map[string]int
	names [32]byte // hash of the names in order
	sotw  entries

	deltaOnce sync.Once
	delta     entries

	diffs diffCache // the last difference to this list (delta.go)
}

// entries is a run of encoded repeated-field entries; entry i is
// buf[at[i]:at[i+1]].
type entries struct {
	buf []byte
	at  []int
}

func (e *entries) add(field protowire.Number, msg []byte) {
	e.buf = protowire.AppendTag(e.buf, field, protowire.BytesType)
	e.buf = protowire.AppendBytes(e.buf, msg)
	e.at = append(e.at, len(e.buf))
}

func (e *entries) entry(i int) []byte { return e.buf[e.at[i]:e.at[i+1]] }

// all is every entry, read only.
func (e *entries) all() []byte { return e.buf[:len(e.buf):len(e.buf)] }

// pick concatenates the chosen entries (in increasing order). One run of
// consecutive entries (one changed route configuration, one moved
// assignment) is the shared buffer itself, read only: a copy per proxy of
// a 490 KB route configuration was 1 GB allocated at 2,000 proxies and a
// quarter of the control plane's CPU in GC. Others go into a new buffer.
func (e *entries) pick(idx []int) []byte {
	if len(idx) > 0 && idx[len(idx)-1]-idx[0] == len(idx)-1 {
		b := e.buf[e.at[idx[0]]:e.at[idx[len(idx)-1]+1]]
		return b[:len(b):len(b)]
	}
	n := 0
	for _, i := range idx {
		n += e.at[i+1] - e.at[i]
	}
	out := make([]byte, 0, n)
	for _, i := range idx {
		out = append(out, e.entry(i)...)
	}
	return out
}

// resourcesField is the field number of resources in both
// DiscoveryResponse and DeltaDiscoveryResponse.
const resourcesField = 2

func (a *sotwAll) get(l *encodedList, typeURL string) *sotwAll {
	a.once.Do(func() {
		a.index = make(map[string]int, len(l.wire))
		a.sotw.at = make([]int, 1, len(l.wire)+1)
		h := sha256.New()
		var any []byte
		for i, r := range l.wire {
			any = appendAny(any[:0], typeURL, wireBytes(r))
			a.sotw.add(resourcesField, any)
			a.index[l.names[i]] = i
			h.Write([]byte(l.names[i]))
			h.Write([]byte{0})
		}
		h.Sum(a.names[:0])
	})
	return a
}

// getDelta returns a with the delta entries built.
func (a *sotwAll) getDelta(l *encodedList, typeURL string) *sotwAll {
	a.get(l, typeURL)
	a.deltaOnce.Do(func() {
		a.delta.at = make([]int, 1, len(l.wire)+1)
		var res []byte
		for i := range l.wire {
			// discovery.v3.Resource: version (1), resource (2), name (3);
			// field 2 is the SotW entry itself (the Any as field 2).
			res = protowire.AppendTag(res[:0], 1, protowire.BytesType)
			res = protowire.AppendString(res, l.hashes[i])
			res = append(res, a.sotw.entry(i)...)
			res = protowire.AppendTag(res, 3, protowire.BytesType)
			res = protowire.AppendString(res, l.names[i])
			a.delta.add(resourcesField, res)
		}
	})
	return a
}

// appendAny appends a google.protobuf.Any: type_url (1) and value (2).
func appendAny(b []byte, typeURL string, value []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, typeURL)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, value)
}

// deltaResponse is one delta response; the DeltaDiscoveryResponse is new
// per call (the server sets its nonce), its encoded resources are shared
// when it sends them all.
type deltaResponse struct {
	req       *cachev3.DeltaRequest
	version   string
	resources []byte // encoded resources field entries (sotwAll)
	removed   []string
	next      map[string]string
}

var _ cachev3.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	dr := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: r.version, RemovedResources: r.removed, TypeUrl: r.req.GetTypeUrl()}
	withResources(dr, r.resources)
	return dr, nil
}
func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                          { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string             { return r.next }
func (r *deltaResponse) GetContext() context.Context                         { return context.Background() }

// wireBytes is a resource's deterministic encoding: the stored one of an
// encoded wrapper (the cache is only handed those).
func wireBytes(r types.Resource) []byte {
	if e, ok := r.(*encoded); ok {
		return e.bytes[:len(e.bytes):len(e.bytes)]
	}
	b, _ := cachev3.MarshalResource(r) // not reached: every list holds encoded
	return b
}

// sotwResponse is one response; the DiscoveryResponse is new per call
// (the server sets its nonce), its encoded resources are shared.
type sotwResponse struct {
	req       *cachev3.Request
	version   string
	resources []byte // encoded resources field entries (sotwAll)
	returned  map[string]string
}

var _ cachev3.Response = (*sotwResponse)(nil)

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	dr := &discoveryv3.DiscoveryResponse{VersionInfo: r.version, TypeUrl: r.req.GetTypeUrl()}
	withResources(dr, r.resources)
	return dr, nil
}

// withResources puts encoded resources field entries into m as its
// unknown fields: protobuf marshals them as they are, and any reader
// decodes them as the resources field (field order does not matter on
// the wire). Readers inside this process (callbacks) see no Resources.
func withResources(m proto.Message, enc []byte) {
	if len(enc) > 0 {
		m.ProtoReflect().SetUnknown(enc)
	}
}
func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }
