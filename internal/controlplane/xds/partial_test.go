package xds

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// sotwNames are the names of a SotW response's assignments, in order.
func sotwNames(t *testing.T, r cachev3.Response) []string {
	t.Helper()
	var names []string
	for _, a := range sent(t, r).GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			t.Fatal(err)
		}
		names = append(names, cla.GetClusterName())
	}
	return names
}

// TestSotwPartial: a state-of-the-world EDS response after an ACK carries
// only the assignments that changed since the list the proxy ACKed (a
// client keeps the others, as in delta xDS); the whole list goes on the
// first request, after a NACK, when an assignment went away, and for
// every CDS response. Named subscriptions get only their changed names.
func TestSotwPartial(t *testing.T) {
	snap := benchSnapshot(3)
	cs1 := served(t, snap)
	cs2 := served(t, withEndpoint(snap, 0, "198.18.9.9"))
	cs3 := served(t, benchSnapshot(4))
	names1 := cs1.types[1].list.names
	moved := names1[0]
	all1 := len(names1)

	c := newWatchCache()
	a := &corev3.Node{Id: "a"}
	sub := stream.NewSotwSubscription(nil, true)
	nonce := 0
	watch := func(typ, version string, nack bool, names ...string) chan cachev3.Response {
		req := &cachev3.Request{Node: a, TypeUrl: typ, VersionInfo: version, ResourceNames: names}
		if nonce > 0 {
			req.ResponseNonce = fmt.Sprint(nonce)
		}
		if nack {
			req.ErrorDetail = &statuspb.Status{Message: "rejected"}
		}
		ch := make(chan cachev3.Response, 1)
		c.CreateWatch(req, &sub, ch)
		return ch
	}
	got := func(r cachev3.Response, version string) []string {
		t.Helper()
		if r.GetResponseVersion() != version {
			t.Fatalf("response version %q, want %q", r.GetResponseVersion(), version)
		}
		nonce++
		sub.SetReturnedResources(r.GetReturnedResources()) // as the server does
		return sotwNames(t, r)
	}
	v := func(cs *servedSnapshot) string { return cs.GetVersion(endpointType) }

	c.set("a", cs1)
	if n := got(answer(t, watch(endpointType, "", false)), v(cs1)); len(n) != all1 {
		t.Fatalf("first response: %d assignments, want %d", len(n), all1)
	}
	ch := watch(endpointType, v(cs1), false)
	silent(t, ch)

	// One endpoint moves: only its assignment is sent, as it is now.
	c.set("a", cs2)
	r := answer(t, ch)
	if n := got(r, v(cs2)); !slices.Equal(n, []string{moved}) {
		t.Fatalf("after an endpoint move: sent %v, want [%s]", n, moved)
	}
	if !proto.Equal(sent(t, r).GetResources()[0], anyOf(t, cs2, moved)) {
		t.Error("the moved assignment is not the new one")
	}
	ch = watch(endpointType, v(cs2), false)
	silent(t, ch)

	// A new service (and the endpoint back): its assignment and the moved one.
	c.set("a", cs3)
	if n := got(answer(t, ch), v(cs3)); len(n) != 2 || !slices.Contains(n, moved) {
		t.Fatalf("after a new service: sent %v, want the new one and %s", n, moved)
	}

	// A NACK (its version rewritten to the rejected one, as callbacks do)
	// gets the whole list of the next version.
	ch = watch(endpointType, v(cs3), true)
	silent(t, ch)
	c.set("a", cs2)
	if n := got(answer(t, ch), v(cs2)); len(n) != all1 {
		t.Fatalf("after a NACK: %d assignments, want the whole list of %d", len(n), all1)
	}

	// A service gone: the whole list (SotW cannot say what went away).
	ch = watch(endpointType, v(cs2), false)
	c.set("a", cs3)
	got(answer(t, ch), v(cs3))
	ch = watch(endpointType, v(cs3), false)
	c.set("a", cs1)
	if n := got(answer(t, ch), v(cs1)); len(n) != all1 {
		t.Fatalf("after a removal: %d assignments, want the whole list of %d", len(n), all1)
	}

	// CDS responses always carry every cluster.
	csub := stream.NewSotwSubscription(nil, true)
	cch := make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: clusterType}, &csub, cch)
	cr := answer(t, cch)
	csub.SetReturnedResources(cr.GetReturnedResources())
	cch = make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: clusterType, VersionInfo: cr.GetResponseVersion(), ResponseNonce: "c1"}, &csub, cch)
	c.set("a", cs3)
	if dr := sent(t, answer(t, cch)); len(dr.GetResources()) != len(cs3.types[0].list.names) {
		t.Fatalf("CDS after a change: %d clusters, want all %d", len(dr.GetResources()), len(cs3.types[0].list.names))
	}

	// A named subscription: the changed one of its names only.
	b := &corev3.Node{Id: "b"}
	c.set("b", cs1)
	want := []string{names1[0], names1[1]}
	nsub := stream.NewSotwSubscription(want, false)
	nch := make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: b, TypeUrl: endpointType, ResourceNames: want}, &nsub, nch)
	nr := answer(t, nch)
	if n := sotwNames(t, nr); !slices.Equal(n, want) {
		t.Fatalf("named: first response %v, want %v", n, want)
	}
	nsub.SetReturnedResources(nr.GetReturnedResources())
	nch = make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: b, TypeUrl: endpointType, VersionInfo: nr.GetResponseVersion(), ResponseNonce: "n1", ResourceNames: want}, &nsub, nch)
	silent(t, nch)
	c.set("b", cs2)
	if n := sotwNames(t, answer(t, nch)); !slices.Equal(n, []string{moved}) {
		t.Fatalf("named, after an endpoint move: sent %v, want [%s]", n, moved)
	}
}

// anyOf is the encoded Any a snapshot's EDS list holds for name.
func anyOf(t *testing.T, cs *servedSnapshot, name string) proto.Message {
	t.Helper()
	sub := stream.NewSotwSubscription([]string{name}, false)
	dr := sent(t, respond(cs, &cachev3.Request{TypeUrl: endpointType, ResourceNames: []string{name}}, &sub, false, nil))
	if len(dr.GetResources()) != 1 {
		t.Fatalf("%s: %d resources", name, len(dr.GetResources()))
	}
	return dr.GetResources()[0]
}

// TestPick: a run of consecutive entries is the shared buffer itself
// (capacity clipped, so an append cannot write into it); other choices
// are copied; both hold exactly the chosen entries in order.
func TestPick(t *testing.T) {
	var e entries
	e.at = []int{0}
	for _, m := range []string{"aa", "bbb", "c", "dddd"} {
		e.add(resourcesField, []byte(m))
	}
	want := func(idx ...int) []byte {
		var b []byte
		for _, i := range idx {
			b = append(b, e.entry(i)...)
		}
		return b
	}
	for _, tc := range []struct {
		idx    []int
		shared bool
	}{{[]int{1}, true}, {[]int{1, 2, 3}, true}, {[]int{0, 2}, false}, {nil, false}} {
		got := e.pick(tc.idx)
		if !bytes.Equal(got, want(tc.idx...)) {
			t.Errorf("pick(%v) = %q, want %q", tc.idx, got, want(tc.idx...))
		}
		if len(got) > 0 {
			if shared := &got[0] == &e.buf[e.at[tc.idx[0]]]; shared != tc.shared {
				t.Errorf("pick(%v) shares the buffer: %v, want %v", tc.idx, shared, tc.shared)
			}
			if cap(got) != len(got) {
				t.Errorf("pick(%v): capacity %d beyond its length %d", tc.idx, cap(got), len(got))
			}
		}
	}
}
