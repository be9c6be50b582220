package xds

import (
	"testing"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// BenchmarkSotwEndpointChange is one state-of-the-world proxy's EDS
// response to an endpoint move at 1,000 services, after it ACKed the
// previous version: the watch cache's response, encoded with the
// server's codec (bytes/op is what goes on the wire per proxy).
func BenchmarkSotwEndpointChange(b *testing.B) {
	snap := benchSnapshot(1000)
	css := [2]*servedSnapshot{served(b, snap), served(b, withEndpoint(snap, 0, "198.18.9.9"))}
	codec := serverCodec()
	sub := stream.NewSotwSubscription(nil, true)
	var rec sentNames
	resp := respond(css[0], &cachev3.Request{TypeUrl: endpointType}, &sub, false, &rec)
	sub.SetReturnedResources(resp.GetReturnedResources())
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		req := &cachev3.Request{TypeUrl: endpointType, VersionInfo: resp.GetResponseVersion(), ResponseNonce: "1"}
		resp = respond(css[i%2], req, &sub, true, &rec)
		sub.SetReturnedResources(resp.GetReturnedResources()) // as the server does
		dr, _ := resp.GetDiscoveryResponse()
		dr.Nonce = "2"
		encode(b, codec, dr)
	}
}

// BenchmarkRouteChange is one proxy's RDS response to a route change at
// 1,000 services (one VirtualService: the port's route configuration
// changes), after it ACKed the previous version, state of the world and
// delta: B/op is what the server allocates per proxy for it.
func BenchmarkRouteChange(b *testing.B) {
	snap := benchSnapshot(1000)
	css := [2]*servedSnapshot{served(b, snap), served(b, withTimeout(snap, 1, 3*time.Second))}
	codec := serverCodec()
	b.Run("sotw", func(b *testing.B) {
		sub := stream.NewSotwSubscription(nil, true)
		var rec sentNames
		resp := respond(css[0], &cachev3.Request{TypeUrl: routeType}, &sub, false, &rec)
		sub.SetReturnedResources(resp.GetReturnedResources())
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			req := &cachev3.Request{TypeUrl: routeType, VersionInfo: resp.GetResponseVersion(), ResponseNonce: "1"}
			resp = respond(css[i%2], req, &sub, true, &rec)
			sub.SetReturnedResources(resp.GetReturnedResources())
			dr, _ := resp.GetDiscoveryResponse()
			dr.Nonce = "2"
			encode(b, codec, dr)
		}
	})
	b.Run("delta", func(b *testing.B) {
		sub := stream.NewDeltaSubscription(nil, nil, nil, true)
		var rec deltaSent
		resp := respondDelta(css[0], &cachev3.DeltaRequest{TypeUrl: routeType}, &sub, &rec)
		sub.SetReturnedResources(resp.GetNextVersionMap())
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			resp = respondDelta(css[i%2], &cachev3.DeltaRequest{TypeUrl: routeType, ResponseNonce: "1"}, &sub, &rec)
			sub.SetReturnedResources(resp.GetNextVersionMap())
			dr, _ := resp.GetDeltaDiscoveryResponse()
			dr.Nonce = "2"
			encode(b, codec, dr)
		}
	})
}
