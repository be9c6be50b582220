package xds

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// fakeDeltaStream drives the watch cache as go-control-plane's delta server
// does (subscription updated before the watch, next version map kept
// after each response) and keeps the client's view: name → version.
type fakeDeltaStream struct {
	t      *testing.T
	c      *watchCache
	node   *corev3.Node
	typ    string
	sub    stream.Subscription
	ch     chan cachev3.DeltaResponse
	cancel func()
	view   map[string]string
	nonce  int
	sent   int // resources received in the last response
}

func newFakeDeltaStream(t *testing.T, c *watchCache, id, typ string, names []string) *fakeDeltaStream {
	d := &fakeDeltaStream{t: t, c: c, node: &corev3.Node{Id: id}, typ: typ, ch: make(chan cachev3.DeltaResponse, 2), view: map[string]string{}}
	d.sub = stream.NewDeltaSubscription(names, nil, nil, true)
	d.watch(&cachev3.DeltaRequest{Node: d.node, TypeUrl: typ, ResourceNamesSubscribe: names})
	return d
}

func (d *fakeDeltaStream) watch(r *cachev3.DeltaRequest) {
	d.t.Helper()
	cancel, err := d.c.CreateDeltaWatch(r, d.sub, d.ch)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cancel = cancel
}

// request sends a request (an ACK, optionally changing the subscription).
func (d *fakeDeltaStream) request(subscribe, unsubscribe []string) {
	d.t.Helper()
	d.cancel()
	d.sub.UpdateResourceSubscriptions(subscribe, unsubscribe)
	for _, n := range unsubscribe {
		// The client forgets it: a named stream no longer wants it, a
		// wildcard stream is sent it again (or told it is gone).
		delete(d.view, n)
	}
	d.watch(&cachev3.DeltaRequest{Node: d.node, TypeUrl: d.typ, ResponseNonce: fmt.Sprint(d.nonce), ResourceNamesSubscribe: subscribe, ResourceNamesUnsubscribe: unsubscribe})
}

// receive takes a pending response, if any, applies it to the view and
// ACKs it; it reports whether there was one.
func (d *fakeDeltaStream) receive() bool {
	d.t.Helper()
	select {
	case resp := <-d.ch:
		d.sub.SetReturnedResources(resp.GetNextVersionMap())
		dr := sentDelta(d.t, resp)
		d.sent = len(dr.GetResources())
		for _, r := range dr.GetResources() {
			if d.view[r.GetName()] == r.GetVersion() {
				d.t.Errorf("%s: %s sent again at the version the client holds", ShortType(d.typ), r.GetName())
			}
			d.view[r.GetName()] = r.GetVersion()
		}
		for _, n := range dr.GetRemovedResources() {
			if _, ok := d.view[n]; !ok {
				d.t.Errorf("%s: %s removed but the client does not hold it", ShortType(d.typ), n)
			}
			delete(d.view, n)
		}
		d.nonce++
		d.request(nil, nil)
		return true
	default:
		return false
	}
}

// want is what the client must hold of snap: every resource, or the
// named ones that exist.
func (d *fakeDeltaStream) want(snap *servedSnapshot) map[string]string {
	vm := snap.typ(d.typ).versionMap
	if d.sub.IsWildcard() {
		return vm
	}
	out := map[string]string{}
	for n := range d.sub.SubscribedResources() {
		if v, ok := vm[n]; ok {
			out[n] = v
		}
	}
	return out
}

func edsName(i int) string { return fmt.Sprintf("outbound|8080||svc-%d.default.svc.cluster.local", i) }

// withoutService returns snap without service i.
func withoutService(snap *model.Snapshot, i int) *model.Snapshot {
	next := *snap
	next.Services = slices.Delete(slices.Clone(snap.Services), i, i+1)
	return &next
}

// TestDeltaIncremental: over a run of snapshots (endpoints moved,
// services added and removed, a push without change) and subscription
// changes (names added and dropped, a wildcard stream unsubscribing a
// name), delta streams hold exactly the current resources after every
// push, are sent only what changed, and are not answered when nothing
// they subscribe to changed. Wildcard and named, EDS and CDS.
func TestDeltaIncremental(t *testing.T) {
	s0 := benchSnapshot(12)
	s1 := withEndpoint(s0, 3, "198.18.200.1")
	s2 := withoutService(benchSnapshot(13), 5) // svc-12 added, svc-5 gone
	s4 := withEndpoint(withEndpoint(s2, 1, "198.18.200.2"), 7, "198.18.200.3")
	snaps := []*servedSnapshot{served(t, s0), served(t, s1), served(t, s2), served(t, s2), served(t, s4)}
	for _, typ := range []string{endpointType, clusterType} {
		t.Run(ShortType(typ), func(t *testing.T) {
			c := newWatchCache()
			for _, id := range []string{"w", "l", "n"} {
				c.set(id, snaps[0])
			}
			wild := newFakeDeltaStream(t, c, "w", typ, []string{"*"}) // explicit wildcard
			legacy := newFakeDeltaStream(t, c, "l", typ, nil)         // wildcard by naming nothing
			named := newFakeDeltaStream(t, c, "n", typ, []string{edsName(1), edsName(5), edsName(12)})
			streams := []*fakeDeltaStream{wild, legacy, named}
			for _, d := range streams {
				if !d.receive() {
					t.Fatalf("%s stream: no first response", d.node.Id)
				}
			}
			check := func(step string, snap *servedSnapshot) {
				t.Helper()
				for _, d := range streams {
					if want := d.want(snap); !maps.Equal(d.view, want) {
						t.Errorf("%s, %s stream holds %v, want %v", step, d.node.Id, d.view, want)
					}
				}
			}
			check("first", snaps[0])
			for i, snap := range snaps[1:] {
				got := map[string]bool{}
				for _, d := range streams {
					c.set(d.node.Id, snap)
					got[d.node.Id] = d.receive()
				}
				check(fmt.Sprintf("push %d", i+1), snap)
				if n := len(legacy.sub.ReturnedResources()); i+1 <= 2 && n != 0 {
					t.Errorf("push %d: a wildcard stream that named nothing keeps %d versions in its subscription, want none (compact)", i+1, n)
				}
				if i+1 == 3 && (got["w"] || got["l"] || got["n"]) {
					t.Errorf("push 3 changed nothing but answered %v", got)
				}
				if i+1 == 1 && typ == endpointType && (!got["w"] || wild.sent != 1 || got["n"]) {
					t.Errorf("push 1 moved svc-3's endpoint: wildcard answered %v with %d resources, named (not subscribed) answered %v", got["w"], wild.sent, got["n"])
				}
				switch i + 1 {
				case 2:
					// Named: drop svc-12, add svc-7 and a name that does not exist.
					named.request([]string{edsName(7), edsName(99)}, []string{edsName(12)})
					named.receive()
					// Wildcard: an explicit unsubscribe is answered with the
					// resource again (go-control-plane marks it unknown).
					wild.request(nil, []string{edsName(2)})
					if got := wild.receive(); !got || wild.sent != 1 {
						t.Errorf("wildcard unsubscribe of an existing name: want it sent again, got a response %v with %d resources", got, wild.sent)
					}
					// Legacy wildcard naming resources: still wildcard, and the
					// unsubscribed name is sent again.
					legacy.request([]string{edsName(99)}, []string{edsName(4)})
					if got := legacy.receive(); !got || legacy.sent != 1 {
						t.Errorf("legacy wildcard stream naming resources: want the unsubscribed one sent again, got a response %v with %d resources", got, legacy.sent)
					}
					check("subscription change", snap)
				}
			}
		})
	}
}
