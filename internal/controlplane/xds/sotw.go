package xds

import (
	"context"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// watcher is the cache go-control-plane's server reads: state-of-the-world
// watches are answered by sotwCache, delta watches (and fetches, which the
// callbacks refuse) by go-control-plane's snapshot cache.
type watcher struct {
	delta cachev3.SnapshotCache
	sotw  *sotwCache
}

var _ cachev3.Cache = watcher{}

func (w watcher) CreateWatch(r *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	return w.sotw.createWatch(r, sub, ch)
}

func (w watcher) CreateDeltaWatch(r *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	return w.delta.CreateDeltaWatch(r, sub, ch)
}

func (w watcher) Fetch(ctx context.Context, r *cachev3.Request) (cachev3.Response, error) {
	return w.delta.Fetch(ctx, r)
}

// sotwCache answers state-of-the-world watches from each proxy's
// servedSnapshot, with go-control-plane's snapshot cache semantics (non-ADS
// mode: a request naming resources gets those that exist). The
// difference is the cost: go-control-plane builds every response per
// proxy (a cached-resource record with two once-functions and an Any per
// resource, and a map of the names returned), under one lock for all
// proxies; here a wildcard response's resources are one slice of Anys per
// type version, shared by every proxy holding that version, holding the
// stored encodings (wire.go) without copying them.
type sotwCache struct {
	mu    sync.Mutex
	nodes map[string]*sotwNode
}

type sotwNode struct {
	snap    *servedSnapshot
	watches map[*sotwWatch]struct{}
}

type sotwWatch struct {
	req *cachev3.Request
	sub cachev3.Subscription
	ch  chan cachev3.Response
}

func newSotwCache() *sotwCache { return &sotwCache{nodes: map[string]*sotwNode{}} }

func (c *sotwCache) node(id string) *sotwNode {
	n := c.nodes[id]
	if n == nil {
		n = &sotwNode{watches: map[*sotwWatch]struct{}{}}
		c.nodes[id] = n
	}
	return n
}

// createWatch answers at once when the proxy lacks the current version
// (or a resource it subscribes to that exists), else waits for set.
func (c *sotwCache) createWatch(r *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	id := r.GetNode().GetId()
	c.mu.Lock()
	n := c.node(id)
	if n.snap != nil {
		if resp := respond(n.snap, r, sub, false); resp != nil {
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

// set publishes a proxy's snapshot and answers its open watches whose
// version changed.
func (c *sotwCache) set(id string, snap *servedSnapshot) {
	c.mu.Lock()
	n := c.node(id)
	n.snap = snap
	var send []*sotwWatch
	var resps []cachev3.Response
	for w := range n.watches {
		if resp := respond(snap, w.req, w.sub, true); resp != nil {
			delete(n.watches, w)
			send, resps = append(send, w), append(resps, resp)
		}
	}
	c.mu.Unlock()
	for i, w := range send {
		w.ch <- resps[i] // one response per watch channel (room for one)
	}
}

// clear forgets a proxy (its stream ended).
func (c *sotwCache) clear(id string) {
	c.mu.Lock()
	delete(c.nodes, id)
	c.mu.Unlock()
}

// respond returns the response a watch gets from snap, or nil when it
// waits: the version is the one the request ACKed and (unless onSet)
// every resource it subscribes to that exists was returned already.
func respond(snap *servedSnapshot, r *cachev3.Request, sub cachev3.Subscription, onSet bool) cachev3.Response {
	st := snap.typ(r.GetTypeUrl())
	if st == nil {
		st = &servedType{list: &encodedList{}, all: &sotwAll{}} // a type not served: none
	}
	if r.GetVersionInfo() == st.version {
		if onSet {
			return nil
		}
		known := sub.ReturnedResources()
		missing := false
		if !sub.IsWildcard() {
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
	all := st.all.get(st.list, r.GetTypeUrl())
	resp := &sotwResponse{req: r, version: st.version}
	if len(r.GetResourceNames()) == 0 {
		resp.anys = all.anys
		resp.returned = returned(sub.ReturnedResources(), st.list.names, nil, st.version)
		return resp
	}
	want := make(map[string]bool, len(r.GetResourceNames()))
	for _, name := range r.GetResourceNames() {
		want[name] = true
	}
	keep := make([]bool, len(st.list.names))
	for i, name := range st.list.names {
		if want[name] {
			keep[i] = true
			resp.anys = append(resp.anys, all.anys[i])
		}
	}
	resp.returned = returned(sub.ReturnedResources(), st.list.names, keep, st.version)
	return resp
}

// returned is the map of names a response returns (the subscription
// keeps it, and go-control-plane's server may delete from it, so it is
// per proxy). Only its keys are read; the previous map is reused when it
// has the same names, so a push allocates none.
func returned(prev map[string]string, names []string, keep []bool, version string) map[string]string {
	n := 0
	same := true
	for i, name := range names {
		if keep != nil && !keep[i] {
			continue
		}
		n++
		if _, ok := prev[name]; !ok {
			same = false
		}
	}
	if same && n == len(prev) && prev != nil {
		return prev
	}
	m := make(map[string]string, n)
	for i, name := range names {
		if keep == nil || keep[i] {
			m[name] = version
		}
	}
	return m
}

// sotwAll is a type version's resources as Anys in name order, built on
// the first response that needs them and shared by every proxy holding
// that version.
type sotwAll struct {
	once sync.Once
	anys []*anypb.Any
}

func (a *sotwAll) get(l *encodedList, typeURL string) *sotwAll {
	a.once.Do(func() {
		a.anys = make([]*anypb.Any, len(l.wire))
		for i, r := range l.wire {
			a.anys[i] = &anypb.Any{TypeUrl: typeURL, Value: wireBytes(r)}
		}
	})
	return a
}

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
// (the server sets its nonce), its resources are shared.
type sotwResponse struct {
	req      *cachev3.Request
	version  string
	anys     []*anypb.Any
	returned map[string]string
}

var _ cachev3.Response = (*sotwResponse)(nil)

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	return &discoveryv3.DiscoveryResponse{VersionInfo: r.version, Resources: r.anys, TypeUrl: r.req.GetTypeUrl()}, nil
}
func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }
