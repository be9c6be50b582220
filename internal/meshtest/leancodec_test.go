package meshtest

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestHeaderCodec(t *testing.T) {
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7",
		Resources: []*anypb.Any{{TypeUrl: resource.ClusterType, Value: []byte{1, 2, 3}}}}
	data, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got discoveryv3.DiscoveryResponse
	if err := (headerCodec{}).Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.VersionInfo != "v1" || got.TypeUrl != resource.ClusterType || got.Nonce != "7" || len(got.Resources) != 0 {
		t.Errorf("decoded %v", &got)
	}
	if err := (headerCodec{}).Unmarshal([]byte{0xff}, &got); err == nil {
		t.Error("truncated input decoded without error")
	}
}

// TestHeaderCodecRaw: with raw, the resources field's entries are kept as
// they came (for SotW and delta responses), and nothing else is.
func TestHeaderCodecRaw(t *testing.T) {
	a := &anypb.Any{TypeUrl: resource.ClusterType, Value: []byte("cluster-a")}
	b := &anypb.Any{TypeUrl: resource.ClusterType, Value: []byte("cluster-b")}
	for _, resp := range []proto.Message{
		&discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7", Resources: []*anypb.Any{a, b}},
		&discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7",
			Resources: []*discoveryv3.Resource{{Name: "a", Version: "1", Resource: a}, {Name: "b", Version: "2", Resource: b}}, RemovedResources: []string{"c"}},
	} {
		data, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.ProtoReflect().New().Interface()
		if err := (headerCodec{raw: true}).Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		// The kept bytes decode as exactly the resources.
		back := resp.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(got.ProtoReflect().GetUnknown(), back); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(resp)
		r := want.ProtoReflect()
		r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if fd.Number() != resourcesField {
				r.Clear(fd)
			}
			return true
		})
		if !proto.Equal(back, want) {
			t.Errorf("%T: kept %v, want %v", resp, back, want)
		}
		if plain := resp.ProtoReflect().New().Interface(); (headerCodec{}).Unmarshal(data, plain) != nil || len(plain.ProtoReflect().GetUnknown()) != 0 {
			t.Errorf("%T: without raw, resources were kept", resp)
		}
	}
}
