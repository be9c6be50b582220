package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

func sotwFixture(t testing.TB, services int) (*translate.Output, *servedSnapshot) {
	t.Helper()
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: "app", Namespace: "default", Capture: true}
	out := translate.Build(benchSnapshot(services), &model.Proxy{Meta: m, ID: m.ID()})
	set, err := (*generation)(nil).versions(out)
	if err != nil {
		t.Fatal(err)
	}
	newInterner().share(set)
	return out, set.snapshot()
}

func answer(t *testing.T, ch chan cachev3.Response) cachev3.Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("watch not answered")
		return nil
	}
}

func silent(t *testing.T, ch chan cachev3.Response) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("watch answered with version %q", r.GetResponseVersion())
	default:
	}
}

// TestSotwCache: the state-of-the-world watches answer as go-control-plane's
// snapshot cache does (a wildcard watch waits for a snapshot, an ACK of
// the current version waits for the next, a request naming resources gets
// only those, a newly named resource is answered at once), and proxies
// with the same type version share one set of encoded resources.
func TestSotwCache(t *testing.T) {
	out, cs := sotwFixture(t, 3)
	c := newWatchCache()
	a := &corev3.Node{Id: "a"}

	sub := stream.NewSotwSubscription(nil, true)
	ch := make(chan cachev3.Response, 1)
	if _, err := c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: clusterType}, &sub, ch); err != nil {
		t.Fatal(err)
	}
	silent(t, ch)
	c.set("a", cs)
	resp := answer(t, ch)
	dr := sent(t, resp)
	if dr.GetVersionInfo() != cs.GetVersion(clusterType) || len(dr.GetResources()) != len(out.Clusters) || resp.GetReturnedResources() == nil {
		t.Fatalf("CDS response version %q with %d resources (returned map %v), want %q with %d", dr.GetVersionInfo(), len(dr.GetResources()), resp.GetReturnedResources(), cs.GetVersion(clusterType), len(out.Clusters))
	}
	sub.SetReturnedResources(resp.GetReturnedResources())

	// The ACK waits; setting the same snapshot again does not answer it.
	ch = make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: clusterType, VersionInfo: dr.GetVersionInfo()}, &sub, ch)
	silent(t, ch)
	c.set("a", cs)
	silent(t, ch)

	// A request naming one assignment gets that one, as encoded.
	name := out.Endpoints[0].GetClusterName()
	esub := stream.NewSotwSubscription([]string{name}, false)
	ech := make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: endpointType, ResourceNames: []string{name}}, &esub, ech)
	eresp := answer(t, ech)
	edr := sent(t, eresp)
	if len(edr.GetResources()) != 1 {
		t.Fatalf("named EDS request got %d resources", len(edr.GetResources()))
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := edr.GetResources()[0].UnmarshalTo(&cla); err != nil || !proto.Equal(&cla, out.Endpoints[0]) {
		t.Fatalf("named EDS resource %v (%v), want %v", &cla, err, out.Endpoints[0])
	}
	esub.SetReturnedResources(eresp.GetReturnedResources())

	// Naming a second one at the same version is answered at once.
	name2 := out.Endpoints[1].GetClusterName()
	esub.SetResourceSubscription([]string{name, name2})
	ech = make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: a, TypeUrl: endpointType, VersionInfo: edr.GetVersionInfo(), ResourceNames: []string{name, name2}}, &esub, ech)
	if edr := sent(t, answer(t, ech)); len(edr.GetResources()) != 2 {
		t.Fatalf("two named EDS resources: got %d", len(edr.GetResources()))
	}

	// A second proxy with the same version gets the same encoded
	// resources (shared), and its own returned-names map.
	bsub := stream.NewSotwSubscription(nil, true)
	bch := make(chan cachev3.Response, 1)
	c.set("b", cs)
	c.CreateWatch(&cachev3.Request{Node: &corev3.Node{Id: "b"}, TypeUrl: clusterType}, &bsub, bch)
	bresp := answer(t, bch)
	rawA, _ := resp.GetDiscoveryResponse()
	rawB, _ := bresp.GetDiscoveryResponse()
	ua, ub := rawA.ProtoReflect().GetUnknown(), rawB.ProtoReflect().GetUnknown()
	if len(ua) == 0 || len(ua) != len(ub) || &ua[0] != &ub[0] {
		t.Error("proxies with the same version do not share the encoded resources")
	}
	if rawA == rawB {
		t.Error("responses share one DiscoveryResponse (the server writes its nonce into it)")
	}
	if bdr := sent(t, bresp); !proto.Equal(bdr, dr) {
		t.Errorf("second proxy got %v, want %v", bdr, dr)
	}
	bresp.GetReturnedResources()["x"] = "y"
	if _, ok := resp.GetReturnedResources()["x"]; ok {
		t.Error("proxies share a returned-names map (the server may delete from it)")
	}
	delete(bresp.GetReturnedResources(), "x")

	// A new snapshot answers the waiting ACK; a cleared proxy's watches
	// are dropped.
	_, cs2 := sotwFixture(t, 4)
	c.set("a", cs2)
	if r := answer(t, ch); r.GetResponseVersion() != cs2.GetVersion(clusterType) {
		t.Fatalf("answered with %q, want %q", r.GetResponseVersion(), cs2.GetVersion(clusterType))
	}
	bsub.SetReturnedResources(bresp.GetReturnedResources())
	bch = make(chan cachev3.Response, 1)
	c.CreateWatch(&cachev3.Request{Node: &corev3.Node{Id: "b"}, TypeUrl: clusterType, VersionInfo: rawB.GetVersionInfo()}, &bsub, bch)
	silent(t, bch)
	c.clear("b")
	c.set("b", cs2)
	silent(t, bch)
}

func deltaAnswer(t *testing.T, ch chan cachev3.DeltaResponse) *discoveryv3.DeltaDiscoveryResponse {
	t.Helper()
	select {
	case r := <-ch:
		dr := sentDelta(t, r)
		return dr
	default:
		t.Fatal("delta watch not answered")
		return nil
	}
}

func deltaSilent(t *testing.T, ch chan cachev3.DeltaResponse) {
	t.Helper()
	select {
	case r := <-ch:
		dr := sentDelta(t, r)
		t.Fatalf("delta watch answered: %d resources, removed %v", len(dr.GetResources()), dr.GetRemovedResources())
	default:
	}
}

// TestDeltaWatches: delta watches answer as go-control-plane's snapshot
// cache does: a wildcard stream's first request gets everything, an ACK
// waits, a change sends only what changed (and names what went away),
// a named subscription gets only its resources, and the resources sent
// are shared between proxies.
func TestDeltaWatches(t *testing.T) {
	out, cs := sotwFixture(t, 3)
	c := newWatchCache()
	a := &corev3.Node{Id: "a"}
	c.set("a", cs)

	sub := stream.NewDeltaSubscription(nil, nil, nil, true)
	ch := make(chan cachev3.DeltaResponse, 2)
	c.CreateDeltaWatch(&cachev3.DeltaRequest{Node: a, TypeUrl: endpointType}, &sub, ch)
	var first cachev3.DeltaResponse
	select {
	case first = <-ch:
	default:
		t.Fatal("first wildcard request not answered")
	}
	dr := sentDelta(t, first)
	// A wildcard stream that names nothing holds the whole list: its
	// subscription keeps no per-name versions (deltaSent).
	if len(dr.GetResources()) != len(out.Endpoints) || len(first.GetNextVersionMap()) != 0 {
		t.Fatalf("first response: %d resources, %d versions, want %d and none", len(dr.GetResources()), len(first.GetNextVersionMap()), len(out.Endpoints))
	}
	for _, r := range dr.GetResources() {
		if r.GetVersion() != cs.GetVersionMap(endpointType)[r.GetName()] {
			t.Errorf("%s: version %q, want the version map's %q", r.GetName(), r.GetVersion(), cs.GetVersionMap(endpointType)[r.GetName()])
		}
	}
	sub.SetReturnedResources(first.GetNextVersionMap())

	// The ACK waits, also when the same snapshot is set again.
	ch = make(chan cachev3.DeltaResponse, 2)
	c.CreateDeltaWatch(&cachev3.DeltaRequest{Node: a, TypeUrl: endpointType, ResponseNonce: "1"}, &sub, ch)
	deltaSilent(t, ch)
	c.set("a", cs)
	deltaSilent(t, ch)

	// One endpoint moves, and one service is gone: one resource is
	// sent, one is named as removed.
	snap := benchSnapshot(3)
	snap = withEndpoint(snap, 0, "198.18.9.9")
	snap.Services = snap.Services[:2]
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: "app", Namespace: "default", Capture: true}
	out2 := translate.Build(snap, &model.Proxy{Meta: m, ID: m.ID()})
	set, err := (*generation)(nil).versions(out2)
	if err != nil {
		t.Fatal(err)
	}
	newInterner().share(set)
	cs2 := set.snapshot()
	c.set("a", cs2)
	dr = deltaAnswer(t, ch)
	if len(dr.GetResources()) != 1 || dr.GetResources()[0].GetName() != out.Endpoints[0].GetClusterName() || len(dr.GetRemovedResources()) != 1 {
		names := []string{}
		for _, r := range dr.GetResources() {
			names = append(names, r.GetName())
		}
		t.Fatalf("after a change: sent %v, removed %v", names, dr.GetRemovedResources())
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := dr.GetResources()[0].GetResource().UnmarshalTo(&cla); err != nil || !proto.Equal(&cla, out2.Endpoints[0]) {
		t.Fatalf("sent %v (%v), want %v", &cla, err, out2.Endpoints[0])
	}

	// A named subscription gets its resource only; a second proxy gets
	// the same (its own response).
	name := out.Endpoints[1].GetClusterName()
	nsub := stream.NewDeltaSubscription([]string{name}, nil, nil, false)
	nch := make(chan cachev3.DeltaResponse, 2)
	c.CreateDeltaWatch(&cachev3.DeltaRequest{Node: a, TypeUrl: endpointType, ResourceNamesSubscribe: []string{name}}, &nsub, nch)
	ndr := deltaAnswer(t, nch)
	if len(ndr.GetResources()) != 1 || ndr.GetResources()[0].GetName() != name {
		t.Fatalf("named subscription got %d resources", len(ndr.GetResources()))
	}
	c.set("b", cs2)
	bsub := stream.NewDeltaSubscription([]string{name}, nil, nil, false)
	bch := make(chan cachev3.DeltaResponse, 2)
	c.CreateDeltaWatch(&cachev3.DeltaRequest{Node: &corev3.Node{Id: "b"}, TypeUrl: endpointType, ResourceNamesSubscribe: []string{name}}, &bsub, bch)
	if bdr := deltaAnswer(t, bch); !proto.Equal(bdr, ndr) {
		t.Errorf("second proxy got %v, want %v", bdr, ndr)
	}
}
