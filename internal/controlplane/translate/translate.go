// Package translate turns a model.Snapshot and one connected proxy into the
// Envoy xDS v3 resources Istio would give that proxy. It is a pure function:
// no clocks, no network, deterministic ordering (golden tests in testdata/).
package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// Output is one proxy's configuration, each slice sorted by resource name.
type Output struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
}

// Build translates snap for proxy p. It never fails: config that cannot be
// honoured was rejected by validation before it reached a Snapshot.
func Build(snap *model.Snapshot, p *model.Proxy) *Output {
	return &Output{}
}
