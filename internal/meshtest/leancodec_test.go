package meshtest

import (
	"bytes"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// split splits data into buffers of at most n bytes, as gRPC hands a
// message received in several frames.
func split(data []byte, n int) mem.BufferSlice {
	var bs mem.BufferSlice
	for len(data) > 0 {
		k := min(n, len(data))
		bs = append(bs, mem.SliceBuffer(bytes.Clone(data[:k])))
		data = data[k:]
	}
	return bs
}

func TestHeaderCodec(t *testing.T) {
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7",
		Resources: []*anypb.Any{{TypeUrl: resource.ClusterType, Value: []byte{1, 2, 3}}}}
	data, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{len(data), 5} {
		var got discoveryv3.DiscoveryResponse
		if err := (headerCodec{}).Unmarshal(split(data, n), &got); err != nil {
			t.Fatal(err)
		}
		if got.VersionInfo != "v1" || got.TypeUrl != resource.ClusterType || got.Nonce != "7" || len(got.Resources) != 0 {
			t.Errorf("buffers of %d: decoded %v", n, &got)
		}
	}
	var got discoveryv3.DiscoveryResponse
	if err := (headerCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, &got); err == nil {
		t.Error("truncated input decoded without error")
	}
}

// TestHeaderCodecRaw: with observe, the resources field's entries are
// handed over as they came (for SotW and delta responses, in one buffer
// or several, contiguous or interleaved with other fields), with the
// response's type URL, and nothing else is.
func TestHeaderCodecRaw(t *testing.T) {
	a := &anypb.Any{TypeUrl: resource.ClusterType, Value: []byte("cluster-a")}
	b := &anypb.Any{TypeUrl: resource.ClusterType, Value: []byte("cluster-b")}
	sotw := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7", Resources: []*anypb.Any{a, b}}
	delta := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7",
		Resources: []*discoveryv3.Resource{{Name: "a", Version: "1", Resource: a}, {Name: "b", Version: "2", Resource: b}}, RemovedResources: []string{"c"}}
	// The same response with a string field between its resources.
	ea, _ := proto.Marshal(a)
	eb, _ := proto.Marshal(b)
	var interleaved []byte
	interleaved = protowire.AppendTag(interleaved, 2, protowire.BytesType)
	interleaved = protowire.AppendBytes(interleaved, ea)
	interleaved = protowire.AppendTag(interleaved, 5, protowire.BytesType)
	interleaved = protowire.AppendString(interleaved, "7")
	interleaved = protowire.AppendTag(interleaved, 2, protowire.BytesType)
	interleaved = protowire.AppendBytes(interleaved, eb)
	interleaved = protowire.AppendTag(interleaved, 4, protowire.BytesType)
	interleaved = protowire.AppendString(interleaved, resource.ClusterType)
	interleaved = protowire.AppendTag(interleaved, 1, protowire.BytesType)
	interleaved = protowire.AppendString(interleaved, "v1")
	for _, tc := range []struct {
		name string
		resp proto.Message
		data []byte
	}{
		{"sotw", sotw, nil},
		{"delta", delta, nil},
		{"interleaved", sotw, interleaved},
	} {
		data := tc.data
		if data == nil {
			var err error
			if data, err = proto.Marshal(tc.resp); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []int{len(data), 7} {
			var gotType string
			var kept []byte
			calls := 0
			c := headerCodec{observe: func(typeURL string, raw []byte) {
				calls++
				gotType, kept = typeURL, bytes.Clone(raw)
			}}
			got := tc.resp.ProtoReflect().New().Interface()
			if err := c.Unmarshal(split(data, n), got); err != nil {
				t.Fatal(err)
			}
			if calls != 1 || gotType != resource.ClusterType {
				t.Fatalf("%s, buffers of %d: observe called %d times, type %q", tc.name, n, calls, gotType)
			}
			// The handed bytes decode as exactly the resources.
			back := tc.resp.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(kept, back); err != nil {
				t.Fatal(err)
			}
			want := proto.Clone(tc.resp)
			r := want.ProtoReflect()
			r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
				if fd.Number() != resourcesField {
					r.Clear(fd)
				}
				return true
			})
			if !proto.Equal(back, want) {
				t.Errorf("%s, buffers of %d: kept %v, want %v", tc.name, n, back, want)
			}
			if len(got.ProtoReflect().GetUnknown()) != 0 {
				t.Errorf("%s: the decoded message keeps unknown bytes", tc.name)
			}
		}
	}
}
