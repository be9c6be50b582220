package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

func sotwFixture(t *testing.T, services int) (*translate.Output, *servedSnapshot) {
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
	c := newSotwCache()
	a := &corev3.Node{Id: "a"}

	sub := stream.NewSotwSubscription(nil, true)
	ch := make(chan cachev3.Response, 1)
	if _, err := c.createWatch(&cachev3.Request{Node: a, TypeUrl: clusterType}, &sub, ch); err != nil {
		t.Fatal(err)
	}
	silent(t, ch)
	c.set("a", cs)
	resp := answer(t, ch)
	dr, _ := resp.GetDiscoveryResponse()
	if dr.GetVersionInfo() != cs.GetVersion(clusterType) || len(dr.GetResources()) != len(out.Clusters) || len(resp.GetReturnedResources()) != len(out.Clusters) {
		t.Fatalf("CDS response version %q with %d resources (returned %d), want %q with %d", dr.GetVersionInfo(), len(dr.GetResources()), len(resp.GetReturnedResources()), cs.GetVersion(clusterType), len(out.Clusters))
	}
	sub.SetReturnedResources(resp.GetReturnedResources())

	// The ACK waits; setting the same snapshot again does not answer it.
	ch = make(chan cachev3.Response, 1)
	c.createWatch(&cachev3.Request{Node: a, TypeUrl: clusterType, VersionInfo: dr.GetVersionInfo()}, &sub, ch)
	silent(t, ch)
	c.set("a", cs)
	silent(t, ch)

	// A request naming one assignment gets that one, as encoded.
	name := out.Endpoints[0].GetClusterName()
	esub := stream.NewSotwSubscription([]string{name}, false)
	ech := make(chan cachev3.Response, 1)
	c.createWatch(&cachev3.Request{Node: a, TypeUrl: endpointType, ResourceNames: []string{name}}, &esub, ech)
	eresp := answer(t, ech)
	edr, _ := eresp.GetDiscoveryResponse()
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
	c.createWatch(&cachev3.Request{Node: a, TypeUrl: endpointType, VersionInfo: edr.GetVersionInfo(), ResourceNames: []string{name, name2}}, &esub, ech)
	if edr, _ := answer(t, ech).GetDiscoveryResponse(); len(edr.GetResources()) != 2 {
		t.Fatalf("two named EDS resources: got %d", len(edr.GetResources()))
	}

	// A second proxy with the same version gets the same encoded
	// resources (shared), and its own returned-names map.
	bsub := stream.NewSotwSubscription(nil, true)
	bch := make(chan cachev3.Response, 1)
	c.set("b", cs)
	c.createWatch(&cachev3.Request{Node: &corev3.Node{Id: "b"}, TypeUrl: clusterType}, &bsub, bch)
	bresp := answer(t, bch)
	bdr, _ := bresp.GetDiscoveryResponse()
	if bdr.GetResources()[0] != dr.GetResources()[0] {
		t.Error("proxies with the same version do not share the encoded resources")
	}
	if bdr == dr {
		t.Error("responses share one DiscoveryResponse (the server writes its nonce into it)")
	}
	bresp.GetReturnedResources()["x"] = "y"
	if _, ok := resp.GetReturnedResources()["x"]; ok {
		t.Error("proxies share a returned-names map (the server may delete from it)")
	}

	// A new snapshot answers the waiting ACK; a cleared proxy's watches
	// are dropped.
	_, cs2 := sotwFixture(t, 4)
	c.set("a", cs2)
	if r := answer(t, ch); r.GetResponseVersion() != cs2.GetVersion(clusterType) {
		t.Fatalf("answered with %q, want %q", r.GetResponseVersion(), cs2.GetVersion(clusterType))
	}
	bsub.SetReturnedResources(resp.GetReturnedResources())
	bch = make(chan cachev3.Response, 1)
	c.createWatch(&cachev3.Request{Node: &corev3.Node{Id: "b"}, TypeUrl: clusterType, VersionInfo: bdr.GetVersionInfo()}, &bsub, bch)
	silent(t, bch)
	c.clear("b")
	c.set("b", cs2)
	silent(t, bch)
}
