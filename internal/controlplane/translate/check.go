package translate

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

type validator interface{ ValidateAll() error }

// Check verifies that the output is consistent and valid before it is
// published: every resource passes its protoc-gen-validate rules (typed
// configs included), every cluster a listener or route names exists, every
// EDS cluster has an assignment, every RDS name has a route configuration,
// and names are unique. It reports all problems, joined.
func (o *Output) Check() error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range o.Clusters {
		if clusters[c.GetName()] != nil {
			fail("cluster %q: defined twice", c.GetName())
		}
		clusters[c.GetName()] = c
		validate(&errs, "cluster "+c.GetName(), c)
		for k, a := range c.GetTypedExtensionProtocolOptions() {
			validateAny(&errs, "cluster "+c.GetName()+" "+k, a)
		}
		if ts := c.GetTransportSocket(); ts != nil {
			validateAny(&errs, "cluster "+c.GetName()+" transport_socket", ts.GetTypedConfig())
		}
	}
	assigned := map[string]bool{}
	for _, e := range o.Endpoints {
		if assigned[e.GetClusterName()] {
			fail("assignment %q: defined twice", e.GetClusterName())
		}
		assigned[e.GetClusterName()] = true
		validate(&errs, "assignment "+e.GetClusterName(), e)
		if c := clusters[e.GetClusterName()]; c == nil || c.GetType() != clusterv3.Cluster_EDS {
			fail("assignment %q: no EDS cluster of that name", e.GetClusterName())
		}
	}
	for _, c := range o.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS {
			svc := c.GetEdsClusterConfig().GetServiceName()
			if svc == "" {
				svc = c.GetName()
			}
			if !assigned[svc] {
				fail("cluster %q: EDS without an assignment %q", c.GetName(), svc)
			}
		}
	}
	needCluster := func(where, name string) {
		if clusters[name] == nil {
			fail("%s: cluster %q does not exist", where, name)
		}
	}
	routes := map[string]bool{}
	for _, rc := range o.Routes {
		if routes[rc.GetName()] {
			fail("route config %q: defined twice", rc.GetName())
		}
		routes[rc.GetName()] = true
		validate(&errs, "route config "+rc.GetName(), rc)
		vhosts, domains := map[string]bool{}, map[string]string{}
		for _, vh := range rc.GetVirtualHosts() {
			// Envoy rejects a route configuration that repeats a virtual
			// host name or lists one domain in two virtual hosts.
			if vhosts[vh.GetName()] {
				fail("route config %q: virtual host %q defined twice", rc.GetName(), vh.GetName())
			}
			vhosts[vh.GetName()] = true
			for _, d := range vh.GetDomains() {
				if other, dup := domains[d]; dup {
					fail("route config %q: domain %q in virtual hosts %q and %q", rc.GetName(), d, other, vh.GetName())
				}
				domains[d] = vh.GetName()
			}
			for _, r := range vh.GetRoutes() {
				where := fmt.Sprintf("route config %q vhost %q route %q", rc.GetName(), vh.GetName(), r.GetName())
				for k, a := range r.GetTypedPerFilterConfig() {
					validateAny(&errs, where+" "+k, a)
				}
				checkRouteClusters(where, r.GetRoute(), needCluster)
			}
		}
	}
	listeners, binds := map[string]bool{}, map[string]string{}
	for _, l := range o.Listeners {
		if listeners[l.GetName()] {
			fail("listener %q: defined twice", l.GetName())
		}
		listeners[l.GetName()] = true
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			addr := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
			if other, dup := binds[addr]; dup {
				fail("listeners %q and %q both bind %s", other, l.GetName(), addr)
			}
			binds[addr] = l.GetName()
		}
		validate(&errs, "listener "+l.GetName(), l)
		if api := l.GetApiListener().GetApiListener(); api != nil {
			checkNetworkFilter(&errs, "listener "+l.GetName()+" api_listener", hcmFilterName, api, routes, needCluster)
		}
		chains := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(chains, d)
		}
		for _, fc := range chains {
			where := fmt.Sprintf("listener %q chain %q", l.GetName(), fc.GetName())
			if ts := fc.GetTransportSocket(); ts != nil {
				validateAny(&errs, where+" transport_socket", ts.GetTypedConfig())
			}
			for _, f := range fc.GetFilters() {
				checkNetworkFilter(&errs, where, f.GetName(), f.GetTypedConfig(), routes, needCluster)
			}
		}
		for _, lf := range l.GetListenerFilters() {
			validateAny(&errs, "listener "+l.GetName()+" "+lf.GetName(), lf.GetTypedConfig())
		}
	}
	for _, s := range o.Secrets {
		validate(&errs, "secret "+s.GetName(), s)
	}
	return errors.Join(errs...)
}

func checkRouteClusters(where string, a *routev3.RouteAction, need func(string, string)) {
	if a == nil {
		return
	}
	if c := a.GetCluster(); c != "" {
		need(where, c)
	}
	for _, w := range a.GetWeightedClusters().GetClusters() {
		need(where, w.GetName())
	}
	for _, m := range a.GetRequestMirrorPolicies() {
		need(where+" mirror", m.GetCluster())
	}
}

func checkNetworkFilter(errs *[]error, where, name string, a *anypb.Any, routes map[string]bool, need func(string, string)) {
	m := validateAny(errs, where+" "+name, a)
	switch f := m.(type) {
	case *hcmv3.HttpConnectionManager:
		if rds := f.GetRds(); rds != nil && !routes[rds.GetRouteConfigName()] {
			*errs = append(*errs, fmt.Errorf("%s: route config %q does not exist", where, rds.GetRouteConfigName()))
		}
		for _, hf := range f.GetHttpFilters() {
			validateAny(errs, where+" "+hf.GetName(), hf.GetTypedConfig())
		}
	case *tcpv3.TcpProxy:
		if c := f.GetCluster(); c != "" {
			need(where, c)
		}
		for _, w := range f.GetWeightedClusters().GetClusters() {
			need(where, w.GetName())
		}
	}
}

func validate(errs *[]error, where string, m proto.Message) {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", where, err))
		}
	}
}

// validateAny unpacks a typed config (every type this package emits is
// linked in) and validates it; it returns the message for deeper checks.
func validateAny(errs *[]error, where string, a *anypb.Any) proto.Message {
	if a == nil {
		*errs = append(*errs, fmt.Errorf("%s: missing typed_config", where))
		return nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", where, err))
		return nil
	}
	validate(errs, where, m)
	return m
}
