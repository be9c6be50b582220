package xds

import (
	"bytes"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// sent is a watch's response as a proxy decodes it from the wire.
func sent(t testing.TB, r cachev3.Response) *discoveryv3.DiscoveryResponse {
	t.Helper()
	dr, err := r.GetDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	var got discoveryv3.DiscoveryResponse
	roundTrip(t, dr, &got)
	return &got
}

func sentDelta(t testing.TB, r cachev3.DeltaResponse) *discoveryv3.DeltaDiscoveryResponse {
	t.Helper()
	dr, err := r.GetDeltaDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	var got discoveryv3.DeltaDiscoveryResponse
	roundTrip(t, dr, &got)
	return &got
}

// roundTrip encodes m with the server's codec and decodes it into out,
// checking that the codec writes exactly what proto.Marshal writes.
func roundTrip(t testing.TB, m, out proto.Message) {
	t.Helper()
	data, err := Codec().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	b := data.Materialize()
	data.Free()
	want, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("codec wrote %d bytes that differ from proto.Marshal's %d", len(b), len(want))
	}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// TestSharedEncoding: responses built from the shared encodings decode to
// exactly the messages built resource by resource from the published
// lists (every Any, and for delta every Resource with name and version),
// for wildcard and named requests, state of the world and delta.
func TestSharedEncoding(t *testing.T) {
	_, cs := sotwFixture(t, 20)
	for i, typ := range Types {
		st := &cs.types[i]
		var anys []*anypb.Any
		var res []*discoveryv3.Resource
		for k, r := range st.list.wire {
			a := &anypb.Any{TypeUrl: typ, Value: wireBytes(r)}
			anys = append(anys, a)
			res = append(res, &discoveryv3.Resource{Name: st.list.names[k], Version: st.list.hashes[k], Resource: a})
		}
		sub := stream.NewSotwSubscription(nil, true)
		got := sent(t, respond(cs, &cachev3.Request{TypeUrl: typ}, &sub, false, nil))
		want := &discoveryv3.DiscoveryResponse{VersionInfo: st.version, TypeUrl: typ, Resources: anys}
		if !proto.Equal(want, got) {
			t.Errorf("%s wildcard response: got %v, want %v", ShortType(typ), got, want)
		}
		dsub := stream.NewDeltaSubscription(nil, nil, nil, true)
		gotD := sentDelta(t, respondDelta(cs, &cachev3.DeltaRequest{TypeUrl: typ}, &dsub, nil))
		wantD := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: st.version, TypeUrl: typ, Resources: res}
		if !proto.Equal(wantD, gotD) {
			t.Errorf("%s delta response: got %v, want %v", ShortType(typ), gotD, wantD)
		}
		if len(anys) < 3 {
			continue
		}
		// Named: the second and last, in name order.
		names := []string{st.list.names[len(anys)-1], st.list.names[1]}
		nsub := stream.NewSotwSubscription(names, false)
		got = sent(t, respond(cs, &cachev3.Request{TypeUrl: typ, ResourceNames: names}, &nsub, false, nil))
		want.Resources = []*anypb.Any{anys[1], anys[len(anys)-1]}
		if !proto.Equal(want, got) {
			t.Errorf("%s named response: got %v, want %v", ShortType(typ), got, want)
		}
		ndsub := stream.NewDeltaSubscription(names, nil, nil, false)
		gotD = sentDelta(t, respondDelta(cs, &cachev3.DeltaRequest{TypeUrl: typ}, &ndsub, nil))
		wantD.Resources = []*discoveryv3.Resource{res[1], res[len(res)-1]}
		if !proto.Equal(wantD, gotD) {
			t.Errorf("%s named delta response: got %v, want %v", ShortType(typ), gotD, wantD)
		}
	}
}

// TestCodecPlain: messages without (or with small) unknown fields
// take gRPC's own protobuf codec, and decoding is gRPC's.
func TestCodecPlain(t *testing.T) {
	m := &discoveryv3.DiscoveryRequest{VersionInfo: "v", TypeUrl: clusterType, ResourceNames: []string{"a", "b"}}
	var got discoveryv3.DiscoveryRequest
	roundTrip(t, m, &got)
	if !proto.Equal(m, &got) {
		t.Errorf("got %v, want %v", &got, m)
	}
}
