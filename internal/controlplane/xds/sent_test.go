package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

func served(t testing.TB, snap *model.Snapshot) *servedSnapshot {
	t.Helper()
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: "app", Namespace: "default", Capture: true}
	set, err := (*generation)(nil).versions(translate.Build(snap, &model.Proxy{Meta: m, ID: m.ID()}))
	if err != nil {
		t.Fatal(err)
	}
	newInterner().share(set)
	return set.snapshot()
}

// TestWildcardNamesRemembered: a wildcard proxy's returned names are
// remembered per node (no map with every name per proxy): its ACK waits,
// a new version (same or other names) is answered, and when the proxy
// names resources later each is sent again once, then its ACK waits.
func TestWildcardNamesRemembered(t *testing.T) {
	snap := benchSnapshot(3)
	cs1, cs2, cs3 := served(t, snap), served(t, withEndpoint(snap, 0, "198.18.9.9")), served(t, benchSnapshot(4))
	if cs1.GetVersion(endpointType) == cs2.GetVersion(endpointType) {
		t.Fatal("the endpoint move did not change the EDS version")
	}
	c := newWatchCache()
	a := &corev3.Node{Id: "a"}
	sub := stream.NewSotwSubscription(nil, true)
	watch := func(version string, names ...string) chan cachev3.Response {
		ch := make(chan cachev3.Response, 1)
		c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: endpointType, VersionInfo: version, ResourceNames: names}, &sub, ch)
		return ch
	}
	got := func(r cachev3.Response, version string, n int) {
		t.Helper()
		dr := sent(t, r)
		if dr.GetVersionInfo() != version || len(dr.GetResources()) != n {
			t.Fatalf("response %q with %d resources, want %q with %d", dr.GetVersionInfo(), len(dr.GetResources()), version, n)
		}
		sub.SetReturnedResources(r.GetReturnedResources()) // as the server does
	}
	all1, all3 := len(cs1.GetResources(endpointType)), len(cs3.GetResources(endpointType))
	c.set("a", cs1)
	got(answer(t, watch("")), cs1.GetVersion(endpointType), all1)
	if n := len(sub.ReturnedResources()); n != 0 {
		t.Errorf("the wildcard subscription holds a map of %d names", n)
	}
	ch := watch(cs1.GetVersion(endpointType))
	silent(t, ch) // the ACK: nothing missing
	c.set("a", cs2)
	got(answer(t, ch), cs2.GetVersion(endpointType), all1)
	ch = watch(cs2.GetVersion(endpointType))
	silent(t, ch)
	c.set("a", cs3) // other names
	got(answer(t, ch), cs3.GetVersion(endpointType), all3)
	silent(t, watch(cs3.GetVersion(endpointType)))

	// The proxy names one resource (go-control-plane updates the
	// subscription first): sent again, then its ACK waits.
	name := cs3.types[1].list.names[0]
	sub.SetResourceSubscription([]string{name})
	got(answer(t, watch(cs3.GetVersion(endpointType), name)), cs3.GetVersion(endpointType), 1)
	silent(t, watch(cs3.GetVersion(endpointType), name))

	// Without a node record (respond called directly) the map has every name.
	wsub := stream.NewSotwSubscription(nil, true)
	if r := respond(cs3, &cachev3.Request{TypeUrl: endpointType}, &wsub, false, nil); len(r.GetReturnedResources()) != all3 {
		t.Errorf("without a record: returned %d names, want %d", len(r.GetReturnedResources()), all3)
	}
}
