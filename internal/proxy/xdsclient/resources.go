package xdsclient

import (
	"bytes"
	"fmt"
	"maps"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// xDS type URLs the client subscribes to.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Types in Envoy's ADS order (CDS before EDS, LDS before RDS; secrets first
// so listeners and clusters that reference them can warm).
var Types = []string{SecretType, ClusterType, EndpointType, ListenerType, RouteType}

// wildcard types are subscribed with "*"; the others by name, as the
// listeners and clusters reference them.
func wildcard(typeURL string) bool { return typeURL == ListenerType || typeURL == ClusterType }

// Resources is the complete config a proxy holds: every resource as
// received, by name. A Resources handed to a Handler is never modified
// afterwards; an update produces a new one.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	// Routes are kept as received, as Endpoints: 1,000 services' route
	// configuration takes 2.5 MB decoded against 0.5; the runtime decodes
	// one only when it changed.
	Routes   map[string][]byte
	Clusters map[string]*clusterv3.Cluster
	// Endpoints are kept as received (protobuf wire bytes, checked when
	// they arrived): decoded, 1,000 services' assignments take 2.1 MB
	// against 0.21, and cluster.BuildEncoded decodes only what changed.
	Endpoints map[string][]byte
	Secrets   map[string]*tlsv3.Secret
	// Versions is the accepted version per type URL (SotW version_info or
	// delta system_version_info).
	Versions map[string]string
	// LocalSecrets names the secrets the proxy made itself, with their
	// version (see Options.Local).
	LocalSecrets map[string]string
}

// setLocal puts the proxy's own secrets into the set.
func (r *Resources) setLocal(secrets map[string]*tlsv3.Secret, version string) {
	if len(secrets) == 0 {
		return
	}
	r.LocalSecrets = map[string]string{}
	for n, s := range secrets {
		r.Secrets[n] = s
		r.LocalSecrets[n] = version
	}
}

// NewResources returns an empty set.
func NewResources() *Resources {
	return &Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string][]byte{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string][]byte{},
		Secrets:   map[string]*tlsv3.Secret{},
		Versions:  map[string]string{},
	}
}

// clone copies the maps (not the immutable messages).
func (r *Resources) clone() *Resources {
	return &Resources{
		Listeners: maps.Clone(r.Listeners),
		Routes:    maps.Clone(r.Routes),
		Clusters:  maps.Clone(r.Clusters),
		Endpoints: maps.Clone(r.Endpoints),
		Secrets:   maps.Clone(r.Secrets),
		Versions:  maps.Clone(r.Versions),

		LocalSecrets: maps.Clone(r.LocalSecrets),
	}
}

// names lists the resource names held for a type.
func (r *Resources) names(typeURL string) []string {
	var out []string
	switch typeURL {
	case ListenerType:
		out = keys(r.Listeners)
	case RouteType:
		out = keys(r.Routes)
	case ClusterType:
		out = keys(r.Clusters)
	case EndpointType:
		out = keys(r.Endpoints)
	case SecretType:
		out = keys(r.Secrets)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// put decodes one resource into the set. The name inside the message must
// match the name it was delivered under (delta) when one is given.
func (r *Resources) put(typeURL string, a *anypb.Any, name string) (string, error) {
	if a.GetTypeUrl() != typeURL {
		return name, fmt.Errorf("resource %q: type %s in a %s response", name, a.GetTypeUrl(), typeURL)
	}
	var m proto.Message
	switch typeURL {
	case ListenerType:
		m = &listenerv3.Listener{}
	case RouteType:
		m = &routev3.RouteConfiguration{}
	case ClusterType:
		m = &clusterv3.Cluster{}
	case EndpointType:
		m = &endpointv3.ClusterLoadAssignment{}
	case SecretType:
		m = &tlsv3.Secret{}
	default:
		return name, fmt.Errorf("unsupported type %s", typeURL)
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return name, fmt.Errorf("resource %q: decoding %s: %w", name, typeURL, err)
	}
	var got string
	switch v := m.(type) {
	case interface{ GetName() string }:
		got = v.GetName()
	case *endpointv3.ClusterLoadAssignment:
		got = v.GetClusterName()
	}
	if name != "" && got != name {
		return name, fmt.Errorf("resource %q: message is named %q", name, got)
	}
	if got == "" {
		return name, fmt.Errorf("a %s resource has no name", typeURL)
	}
	switch v := m.(type) {
	case *listenerv3.Listener:
		r.Listeners[got] = v
	case *routev3.RouteConfiguration:
		r.Routes[got] = a.GetValue()
	case *clusterv3.Cluster:
		r.Clusters[got] = v
	case *endpointv3.ClusterLoadAssignment:
		r.Endpoints[got] = a.GetValue()
	case *tlsv3.Secret:
		r.Secrets[got] = v
	}
	return got, nil
}

func (r *Resources) remove(typeURL, name string) {
	switch typeURL {
	case ListenerType:
		delete(r.Listeners, name)
	case RouteType:
		delete(r.Routes, name)
	case ClusterType:
		delete(r.Clusters, name)
	case EndpointType:
		delete(r.Endpoints, name)
	case SecretType:
		delete(r.Secrets, name)
	}
}

// prune removes routes, endpoints and secrets that no listener or cluster
// references, and reports what it removed by type.
func (r *Resources) prune(keep Refs) map[string][]string {
	refs := r.References()
	out := map[string][]string{}
	for _, typ := range []string{RouteType, EndpointType, SecretType} {
		want, kept := refs.of(typ), keep.of(typ)
		for _, n := range r.names(typ) {
			if !want[n] && !kept[n] {
				r.remove(typ, n)
				out[typ] = append(out[typ], n)
			}
		}
	}
	return out
}

// SameEncoded reports whether a and b, two encodings of a message of
// type M (nil: none), are the same message: equal bytes, or equal once
// decoded, since an encoder need not be deterministic (map fields).
func SameEncoded[M any, PM interface {
	*M
	proto.Message
}](a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if bytes.Equal(a, b) {
		return true
	}
	x, y := PM(new(M)), PM(new(M))
	return proto.Unmarshal(a, x) == nil && proto.Unmarshal(b, y) == nil && proto.Equal(x, y)
}

// reset empties one type (a SotW response replaces the whole set).
func (r *Resources) reset(typeURL string) {
	switch typeURL {
	case ListenerType:
		r.Listeners = map[string]*listenerv3.Listener{}
	case RouteType:
		r.Routes = map[string][]byte{}
	case ClusterType:
		r.Clusters = map[string]*clusterv3.Cluster{}
	case EndpointType:
		r.Endpoints = map[string][]byte{}
	case SecretType:
		r.Secrets = map[string]*tlsv3.Secret{}
	}
}

// Refs are the names the current listeners and clusters depend on.
type Refs struct {
	Routes    map[string]bool
	Endpoints map[string]bool
	Secrets   map[string]bool
}

func (f Refs) of(typeURL string) map[string]bool {
	switch typeURL {
	case RouteType:
		return f.Routes
	case EndpointType:
		return f.Endpoints
	case SecretType:
		return f.Secrets
	}
	return nil
}

// References walks listeners and clusters for the RDS, EDS and SDS names
// they use. Undecodable typed configs are skipped here; compiling them
// fails and NACKs.
func (r *Resources) References() Refs {
	f := Refs{Routes: map[string]bool{}, Endpoints: map[string]bool{}, Secrets: map[string]bool{}}
	for _, l := range r.Listeners {
		routes, secrets := ListenerRefs(l)
		for _, n := range routes {
			f.Routes[n] = true
		}
		for _, n := range secrets {
			f.Secrets[n] = true
		}
	}
	for name, c := range r.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS {
			n := c.GetEdsClusterConfig().GetServiceName()
			if n == "" {
				n = name
			}
			f.Endpoints[n] = true
		}
		sockets := []*anypb.Any{c.GetTransportSocket().GetTypedConfig()}
		for _, m := range c.GetTransportSocketMatches() {
			sockets = append(sockets, m.GetTransportSocket().GetTypedConfig())
		}
		for _, ts := range sockets {
			u := &tlsv3.UpstreamTlsContext{}
			if ts != nil && ts.MessageIs(u) && ts.UnmarshalTo(u) == nil {
				addSDS(f.Secrets, u.GetCommonTlsContext())
			}
		}
	}
	return f
}

// ListenerRefs lists the RDS route names and SDS secret names one listener
// uses (HCM rds, DownstreamTlsContext SDS references).
func ListenerRefs(l *listenerv3.Listener) (routes, secrets []string) {
	chains := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains, d)
	}
	sec := map[string]bool{}
	for _, fc := range chains {
		for _, flt := range fc.GetFilters() {
			tc := flt.GetTypedConfig()
			if tc == nil {
				continue
			}
			h := &hcmv3.HttpConnectionManager{}
			if tc.MessageIs(h) && tc.UnmarshalTo(h) == nil {
				if n := h.GetRds().GetRouteConfigName(); n != "" {
					routes = append(routes, n)
				}
			}
		}
		if ts := fc.GetTransportSocket().GetTypedConfig(); ts != nil {
			d := &tlsv3.DownstreamTlsContext{}
			if ts.MessageIs(d) && ts.UnmarshalTo(d) == nil {
				addSDS(sec, d.GetCommonTlsContext())
			}
		}
	}
	return routes, keys(sec)
}

func addSDS(into map[string]bool, c *tlsv3.CommonTlsContext) {
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		into[s.GetName()] = true
	}
	if s := c.GetValidationContextSdsSecretConfig(); s != nil {
		into[s.GetName()] = true
	}
	if s := c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); s != nil {
		into[s.GetName()] = true
	}
}

// Missing reports what a complete config still lacks: referenced routes,
// endpoints and secrets not received. Empty means complete.
func (r *Resources) Missing() []string {
	f := r.References()
	var out []string
	for _, n := range keys(f.Routes) {
		if r.Routes[n] == nil {
			out = append(out, "route "+n)
		}
	}
	for _, n := range keys(f.Endpoints) {
		if r.Endpoints[n] == nil {
			out = append(out, "endpoints "+n)
		}
	}
	for _, n := range keys(f.Secrets) {
		if r.Secrets[n] == nil {
			out = append(out, "secret "+n)
		}
	}
	return out
}
