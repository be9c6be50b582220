package meshtest

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
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
