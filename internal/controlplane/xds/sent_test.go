package xds

import (
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

func served(t *testing.T, snap *model.Snapshot) *servedSnapshot {
	t.Helper()
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: "app", Namespace: "default", Capture: true}
	set, err := (*generation)(nil).versions(translate.Build(snap, &model.Proxy{Meta: m, ID: m.ID()}))
	if err != nil {
		t.Fatal(err)
	}
	newInterner().share(set)
	return set.snapshot()
}

// TestReturnedNamesReused: a wildcard proxy's returned-names map is reused
// for a new version with the same names, and not when the names differ
// or go-control-plane deleted from it (then a missing name is answered).
func TestReturnedNamesReused(t *testing.T) {
	snap := benchSnapshot(3)
	cs1, cs2, cs3 := served(t, snap), served(t, withEndpoint(snap, 0, "198.18.9.9")), served(t, benchSnapshot(4))
	if cs1.GetVersion(endpointType) == cs2.GetVersion(endpointType) {
		t.Fatal("the endpoint move did not change the EDS version")
	}
	c := newWatchCache()
	a := &corev3.Node{Id: "a"}
	sub := stream.NewSotwSubscription(nil, true)
	watch := func(version string) chan cachev3.Response {
		ch := make(chan cachev3.Response, 1)
		c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: endpointType, VersionInfo: version}, &sub, ch)
		return ch
	}
	same := func(x, y map[string]string) bool {
		return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer()
	}
	c.set("a", cs1)
	r1 := answer(t, watch(""))
	sub.SetReturnedResources(r1.GetReturnedResources())
	if len(r1.GetReturnedResources()) != len(cs1.GetResources(endpointType)) {
		t.Fatalf("returned %d names, want %d", len(r1.GetReturnedResources()), len(cs1.GetResources(endpointType)))
	}
	ch := watch(cs1.GetVersion(endpointType))
	silent(t, ch) // the ACK: nothing missing
	c.set("a", cs2)
	r2 := answer(t, ch)
	if !same(r2.GetReturnedResources(), r1.GetReturnedResources()) {
		t.Error("same names, new version: the returned-names map was rebuilt")
	}
	sub.SetReturnedResources(r2.GetReturnedResources())

	// go-control-plane deletes a name (a subscription change): the ACK of
	// the current version is answered again, with a new map.
	for name := range sub.ReturnedResources() {
		delete(sub.ReturnedResources(), name)
		break
	}
	r3 := answer(t, watch(cs2.GetVersion(endpointType)))
	if same(r3.GetReturnedResources(), r2.GetReturnedResources()) || len(r3.GetReturnedResources()) != len(cs2.GetResources(endpointType)) {
		t.Errorf("after a deletion: reused %v, %d names", same(r3.GetReturnedResources(), r2.GetReturnedResources()), len(r3.GetReturnedResources()))
	}
	sub.SetReturnedResources(r3.GetReturnedResources())

	// Different names: a new map with every name.
	ch = watch(cs2.GetVersion(endpointType))
	silent(t, ch)
	c.set("a", cs3)
	r4 := answer(t, ch)
	if same(r4.GetReturnedResources(), r3.GetReturnedResources()) || len(r4.GetReturnedResources()) != len(cs3.GetResources(endpointType)) {
		t.Errorf("new names: reused %v, %d names, want %d", same(r4.GetReturnedResources(), r3.GetReturnedResources()), len(r4.GetReturnedResources()), len(cs3.GetResources(endpointType)))
	}
}
