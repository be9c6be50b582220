package xds

import (
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// BenchmarkDeltaPush is what one delta proxy costs the watch cache in a
// push at 1,000 services, for a wildcard EDS subscription: "changed"
// answers a proxy holding the previous version after one endpoint moved
// (the snapshots alternate, so each answer carries one resource);
// "unchanged" is the check of a type whose version did not change (every
// open watch of every proxy is asked on every push).
func BenchmarkDeltaPush(b *testing.B) {
	base := benchSnapshot(1000)
	a, c := served(b, base), served(b, withEndpoint(base, 0, "198.18.200.1"))
	codec := serverCodec()
	req := &cachev3.DeltaRequest{TypeUrl: endpointType, ResponseNonce: "1"}
	var rec deltaSent
	b.Run("changed", func(b *testing.B) {
		sub := stream.NewDeltaSubscription(nil, nil, nil, true)
		sub.SetReturnedResources(respondDelta(a, req, &sub, &rec).GetNextVersionMap())
		snaps := [2]*servedSnapshot{c, a}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			resp := respondDelta(snaps[i%2], req, &sub, &rec)
			if resp == nil {
				b.Fatal("no response")
			}
			sub.SetReturnedResources(resp.GetNextVersionMap()) // as the server does
			dr, _ := resp.GetDeltaDiscoveryResponse()
			if len(dr.GetResources()) > 0 || len(dr.ProtoReflect().GetUnknown()) == 0 {
				b.Fatal("not one encoded resource")
			}
			dr.Nonce = "1"
			encode(b, codec, dr)
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		sub := stream.NewDeltaSubscription(nil, nil, nil, true)
		sub.SetReturnedResources(respondDelta(a, req, &sub, &rec).GetNextVersionMap())
		b.ReportAllocs()
		for b.Loop() {
			if respondDelta(a, req, &sub, &rec) != nil {
				b.Fatal("answered without a change")
			}
		}
	})
}
