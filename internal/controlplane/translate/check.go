package translate

import (
	"errors"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

type validator interface{ ValidateAll() error }

// checkItem is one step of checking a resource: a problem found in the
// resource alone (err), or a reference to resolve against the rest of the
// output (a cluster, or with route set a route configuration). A
// resource's steps do not depend on the other resources, so they are
// computed once for resources shared between proxies (Cache.Check).
type checkItem struct {
	err   error
	where string
	name  string
	route bool
}

// Check verifies that the output is consistent and valid before it is
// published: every resource passes its protoc-gen-validate rules (typed
// configs included), every cluster a listener or route names exists, every
// EDS cluster has an assignment, every RDS name has a route configuration,
// and names are unique. It reports all problems, joined.
func (o *Output) Check() error { return check(o, nil) }

// Check is Output.Check, with the per-resource part done once for the
// resources shared between proxies.
func (c *Cache) Check(o *Output) error {
	if shared, own := o.Layers(); shared != nil && own != nil {
		return c.checkLayered(shared, own)
	}
	return check(o, c)
}

// steps returns r's check steps, memoised when r is shared.
func (c *Cache) steps(r any, compute func() []checkItem) []checkItem {
	if c == nil {
		return compute()
	}
	v, ok := c.shared.Load(r)
	if !ok {
		return compute()
	}
	if p := v.(*[]checkItem); p != nil {
		return *p
	}
	items := compute()
	c.shared.Store(r, &items)
	return items
}

func check(o *Output, c *Cache) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	clusters := map[string]*clusterv3.Cluster{}
	routes := map[string]bool{}
	run := func(items []checkItem) {
		for _, it := range items {
			switch {
			case it.err != nil:
				errs = append(errs, it.err)
			case it.route:
				if !routes[it.name] {
					fail("%s: route config %q does not exist", it.where, it.name)
				}
			case clusters[it.name] == nil:
				fail("%s: cluster %q does not exist", it.where, it.name)
			}
		}
	}

	for _, cl := range o.Clusters {
		if clusters[cl.GetName()] != nil {
			fail("cluster %q: defined twice", cl.GetName())
		}
		clusters[cl.GetName()] = cl
		run(c.steps(cl, func() []checkItem { return clusterSteps(cl) }))
	}
	assigned := map[string]bool{}
	for _, e := range o.Endpoints {
		if assigned[e.GetClusterName()] {
			fail("assignment %q: defined twice", e.GetClusterName())
		}
		assigned[e.GetClusterName()] = true
		run(c.steps(e, func() []checkItem {
			var s stepList
			s.validate("assignment "+e.GetClusterName(), e)
			return s
		}))
		if cl := clusters[e.GetClusterName()]; cl == nil || cl.GetType() != clusterv3.Cluster_EDS {
			fail("assignment %q: no EDS cluster of that name", e.GetClusterName())
		}
	}
	for _, cl := range o.Clusters {
		if svc := edsServiceName(cl); svc != "" && !assigned[svc] {
			fail("cluster %q: EDS without an assignment %q", cl.GetName(), svc)
		}
	}
	for _, rc := range o.Routes {
		if routes[rc.GetName()] {
			fail("route config %q: defined twice", rc.GetName())
		}
		routes[rc.GetName()] = true
		run(c.steps(rc, func() []checkItem { return routeSteps(rc) }))
	}
	listeners, binds := map[string]bool{}, map[string]string{}
	for _, l := range o.Listeners {
		if listeners[l.GetName()] {
			fail("listener %q: defined twice", l.GetName())
		}
		listeners[l.GetName()] = true
		if addr, ok := bindAddress(l.GetAddress().GetSocketAddress()); ok {
			if other, dup := binds[addr]; dup {
				fail("listeners %q and %q both bind %s", other, l.GetName(), addr)
			}
			binds[addr] = l.GetName()
		}
		run(c.steps(l, func() []checkItem { return c.listenerSteps(l) }))
	}
	for _, sec := range o.Secrets {
		run(c.steps(sec, func() []checkItem {
			var s stepList
			s.validate("secret "+sec.GetName(), sec)
			return s
		}))
	}
	return errors.Join(errs...)
}

// edsServiceName is the assignment an EDS cluster needs ("" if not EDS).
func edsServiceName(c *clusterv3.Cluster) string {
	if c.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if svc := c.GetEdsClusterConfig().GetServiceName(); svc != "" {
		return svc
	}
	return c.GetName()
}

// bindAddress is a listener's "ip:port", when it binds a socket address.
func bindAddress(sa *corev3.SocketAddress) (string, bool) {
	if sa == nil {
		return "", false
	}
	return fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()), true
}

// stepList collects check steps.
type stepList []checkItem

func (s *stepList) fail(format string, a ...any) {
	*s = append(*s, checkItem{err: fmt.Errorf(format, a...)})
}

func (s *stepList) needCluster(where, name string) {
	if undefinedSubsetCluster(name) {
		return
	}
	*s = append(*s, checkItem{where: where, name: name})
}

func (s *stepList) validate(where string, m proto.Message) {
	var errs []error
	validate(&errs, where, m)
	for _, e := range errs {
		*s = append(*s, checkItem{err: e})
	}
}

func (s *stepList) validateAny(where string, a *anypb.Any) proto.Message {
	var errs []error
	m := validateAny(&errs, where, a)
	for _, e := range errs {
		*s = append(*s, checkItem{err: e})
	}
	return m
}

func clusterSteps(c *clusterv3.Cluster) []checkItem {
	var s stepList
	s.validate("cluster "+c.GetName(), c)
	for k, a := range c.GetTypedExtensionProtocolOptions() {
		s.validateAny("cluster "+c.GetName()+" "+k, a)
	}
	if ts := c.GetTransportSocket(); ts != nil {
		s.validateAny("cluster "+c.GetName()+" transport_socket", ts.GetTypedConfig())
	}
	return s
}

func routeSteps(rc *routev3.RouteConfiguration) []checkItem {
	var s stepList
	s.validate("route config "+rc.GetName(), rc)
	vhosts, domains := map[string]bool{}, map[string]string{}
	for _, vh := range rc.GetVirtualHosts() {
		// Envoy rejects a route configuration that repeats a virtual
		// host name or lists one domain in two virtual hosts.
		if vhosts[vh.GetName()] {
			s.fail("route config %q: virtual host %q defined twice", rc.GetName(), vh.GetName())
		}
		vhosts[vh.GetName()] = true
		for _, d := range vh.GetDomains() {
			if other, dup := domains[d]; dup {
				s.fail("route config %q: domain %q in virtual hosts %q and %q", rc.GetName(), d, other, vh.GetName())
			}
			domains[d] = vh.GetName()
		}
		for _, r := range vh.GetRoutes() {
			where := fmt.Sprintf("route config %q vhost %q route %q", rc.GetName(), vh.GetName(), r.GetName())
			for k, a := range r.GetTypedPerFilterConfig() {
				s.validateAny(where+" "+k, a)
			}
			checkRouteClusters(where, r.GetRoute(), s.needCluster)
		}
	}
	return s
}

// listenerSteps are a listener's check steps; c (may be nil) memoises
// those of its network filters, which repeat across proxies whose own
// listeners differ only in address (an explicit sidecar's proxy listener).
func (c *Cache) listenerSteps(l *listenerv3.Listener) []checkItem {
	var s stepList
	s.validate("listener "+l.GetName(), l)
	if api := l.GetApiListener().GetApiListener(); api != nil {
		c.networkFilter(&s, "listener "+l.GetName()+" api_listener", hcmFilterName, api)
	}
	chains := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains, d)
	}
	for _, fc := range chains {
		where := fmt.Sprintf("listener %q chain %q", l.GetName(), fc.GetName())
		if ts := fc.GetTransportSocket(); ts != nil {
			s.validateAny(where+" transport_socket", ts.GetTypedConfig())
		}
		for _, f := range fc.GetFilters() {
			c.networkFilter(&s, where, f.GetName(), f.GetTypedConfig())
		}
	}
	for _, lf := range l.GetListenerFilters() {
		s.validateAny("listener "+l.GetName()+" "+lf.GetName(), lf.GetTypedConfig())
	}
	return s
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

// networkFilter appends checkNetworkFilter's steps, computed once per
// snapshot for each place, filter name and typed config (a pure function
// of them: decoding and validating an HTTP connection manager per proxy
// was two thirds of the per-proxy check).
func (c *Cache) networkFilter(s *stepList, where, name string, a *anypb.Any) {
	if c == nil {
		checkNetworkFilter(s, where, name, a)
		return
	}
	key := where + "\x00" + name + "\x00" + a.GetTypeUrl() + "\x00" + string(a.GetValue())
	if v, ok := c.filters.Load(key); ok {
		*s = append(*s, v.([]checkItem)...)
		return
	}
	var fs stepList
	checkNetworkFilter(&fs, where, name, a)
	c.filters.Store(key, []checkItem(fs))
	*s = append(*s, fs...)
}

func checkNetworkFilter(s *stepList, where, name string, a *anypb.Any) {
	m := s.validateAny(where+" "+name, a)
	switch f := m.(type) {
	case *hcmv3.HttpConnectionManager:
		if rds := f.GetRds(); rds != nil {
			*s = append(*s, checkItem{where: where, name: rds.GetRouteConfigName(), route: true})
		}
		for _, hf := range f.GetHttpFilters() {
			s.validateAny(where+" "+hf.GetName(), hf.GetTypedConfig())
		}
	case *tcpv3.TcpProxy:
		if c := f.GetCluster(); c != "" {
			s.needCluster(where, c)
		}
		for _, w := range f.GetWeightedClusters().GetClusters() {
			s.needCluster(where, w.GetName())
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

// undefinedSubsetCluster reports whether name is an outbound subset
// cluster (outbound|PORT|SUBSET|HOST with a subset). A route may name one
// that does not exist: a VirtualService naming a subset no DestinationRule
// defines, which Istio emits as is and Envoy answers with 503 NC.
func undefinedSubsetCluster(name string) bool {
	parts := strings.SplitN(name, "|", 4)
	return len(parts) == 4 && parts[0] == "outbound" && parts[2] != ""
}
