package xds

import (
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the default codec
)

// BenchmarkSendResponse is what one proxy's response costs the server
// once the watch cache has it: building the DiscoveryResponse (or delta
// response) and encoding it for the wire with the server's codec, at
// 1,000 services. Every proxy of a push pays this for every changed type.
// The delta case is a wildcard stream's first response (every resource).
func BenchmarkSendResponse(b *testing.B) {
	_, cs := sotwFixture(b, 1000)
	codec := serverCodec()
	for _, typ := range []string{clusterType, endpointType, routeType} {
		b.Run("sotw/"+ShortType(typ), func(b *testing.B) {
			sub := stream.NewSotwSubscription(nil, true)
			req := &cachev3.Request{TypeUrl: typ}
			var rec sentNames
			b.ReportAllocs()
			for b.Loop() {
				resp := respond(cs, req, &sub, false, &rec)
				sub.SetReturnedResources(resp.GetReturnedResources()) // as the server does
				dr, _ := resp.GetDiscoveryResponse()
				dr.Nonce = "1"
				encode(b, codec, dr)
			}
		})
		b.Run("delta/"+ShortType(typ), func(b *testing.B) {
			req := &cachev3.DeltaRequest{TypeUrl: typ}
			b.ReportAllocs()
			for b.Loop() {
				sub := stream.NewDeltaSubscription(nil, nil, nil, true)
				dr, _ := respondDelta(cs, req, &sub, nil).GetDeltaDiscoveryResponse()
				dr.Nonce = "1"
				encode(b, codec, dr)
			}
		})
	}
}

// encode encodes m as the server sends it and counts its bytes.
func encode(b *testing.B, codec encoding.CodecV2, m any) {
	data, err := codec.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(data.Len()))
	data.Free()
}

func serverCodec() encoding.CodecV2 { return Codec() }
