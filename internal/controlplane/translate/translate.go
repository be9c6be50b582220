// Package translate turns a model.Snapshot and one connected proxy into the
// Envoy xDS v3 resources Istio would give that proxy. It is a pure function:
// no clocks, no network, deterministic ordering (golden tests in testdata/).
package translate

import (
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// Output is one proxy's configuration, each slice sorted by resource name.
type Output struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret

	// shared and own are the parts Cache.Build merged into this output
	// (nil from Build); shared is one *Output for every proxy of a key.
	shared, own *Output
}

// Layers returns, for an output of Cache.Build, the part shared with
// other proxies (the same pointer for all of them, to be treated as
// read-only) and the proxy's own part; nil, nil for any other output.
// The output's lists are exactly the two parts merged by name.
func (o *Output) Layers() (shared, own *Output) { return o.shared, o.own }

// Build translates snap for proxy p. It never fails: config that cannot be
// honoured was rejected by validation before it reached a Snapshot; what
// still cannot be translated is skipped, as Istio does.
func Build(snap *model.Snapshot, p *model.Proxy) *Output {
	if snap == nil || p == nil || p.Meta == nil {
		return &Output{}
	}
	b := newBuilder(snap, p)
	switch {
	case p.IsGRPC():
		b.buildGRPC()
	case p.Meta.Type == node.Router:
		b.buildClusters()
		b.buildGateway()
	default:
		b.buildClusters()
		b.buildInbound()
		b.decorateInbound()
		if p.Meta.Capture {
			b.buildCaptureOutbound()
		} else {
			b.buildExplicitOutbound()
		}
		b.buildBoundEgress()
	}
	if !p.IsGRPC() {
		b.applySecurity()
		b.applyTelemetry()
	}
	o := b.output()
	if !p.IsGRPC() {
		attemptCounts(o.Routes)
	}
	return o
}

// attemptCounts sets include_request_attempt_count on outbound and gateway
// virtual hosts, as Istio does: upstreams see x-envoy-attempt-count. Not
// inbound, which would overwrite the client sidecar's count with its own.
func attemptCounts(routes []*routev3.RouteConfiguration) {
	for _, rc := range routes {
		if strings.HasPrefix(rc.Name, "inbound|") {
			continue
		}
		for _, vh := range rc.VirtualHosts {
			vh.IncludeRequestAttemptCount = true
		}
	}
}

// output collects the builder's resources, sorted by name.
func (b *builder) output() *Output {
	o := &Output{}
	for _, n := range sortedKeys(b.listeners) {
		o.Listeners = append(o.Listeners, b.listeners[n])
	}
	for _, n := range sortedKeys(b.routes) {
		o.Routes = append(o.Routes, b.routes[n])
	}
	for _, n := range sortedKeys(b.clusters) {
		o.Clusters = append(o.Clusters, b.clusters[n])
	}
	for _, n := range sortedKeys(b.assignments) {
		o.Endpoints = append(o.Endpoints, b.assignments[n])
	}
	for _, n := range sortedKeys(b.secrets) {
		o.Secrets = append(o.Secrets, b.secrets[n])
	}
	return o
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
