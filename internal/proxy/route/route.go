// Package route compiles an Envoy RouteConfiguration into an immutable
// Table and matches requests against it with Envoy's semantics: virtual host
// selection by authority (exact, suffix wildcard, prefix wildcard, then
// "*"), then the first route whose match accepts the request. A Table is
// safe for concurrent use and never changes after Compile; a new RDS version
// compiles a new Table.
//
// Per-route configuration of the fault and CORS filters is compiled here too
// (Fault, Cors) so that the filters, which read the matched Route, need not
// be imported by this package.
// Semantics: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/http_routing
package route

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Table is a compiled RouteConfiguration.
type Table struct {
	Name     string
	vhosts   []*VirtualHost
	exact    map[string]*VirtualHost
	suffixes []wildcard // "*.foo.com": longest first
	prefixes []wildcard // "foo.*": longest first
	star     *VirtualHost
	// Headers are the route-configuration-level header mutations.
	Headers Headers
}

type wildcard struct {
	part  string // ".foo.com" or "foo."
	vhost *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []*Route
	Headers Headers
	Table   *Table
	// IncludeAttemptCount: send x-envoy-attempt-count upstream (Istio
	// sets include_request_attempt_count on every virtual host).
	IncludeAttemptCount         bool
	IncludeAttemptCountResponse bool
}

// ActionKind says what a route does with a matched request.
type ActionKind uint8

const (
	ActionRoute    ActionKind = iota + 1 // forward to a cluster
	ActionRedirect                       // answer with a redirect
	ActionDirect                         // answer with a fixed response
)

// Route is one compiled route: match and action.
type Route struct {
	Name  string
	VHost *VirtualHost
	// Operation is the route's decorator operation: the name of the
	// spans of requests it serves (Istio: "host:port/path*").
	Operation string
	// Propagate is the decorator's propagate (default true): whether the
	// operation travels in x-envoy-decorator-operation.
	Propagate bool

	// match
	pathKind    uint8
	path        string
	re          *regexp.Regexp
	ignoreCase  bool
	connect     bool
	grpc        bool
	headers     []*HeaderMatch
	query       []*queryMatch
	meta        []*MetadataMatch // dynamic_metadata
	fraction    *Fraction
	hasFraction bool

	Kind     ActionKind
	Action   *Action         // ActionRoute
	Redirect *Redirect       // ActionRedirect
	Direct   *DirectResponse // ActionDirect

	// Headers are this route's header mutations.
	Headers Headers
	// Fault and Cors are the per-filter configs in effect for this route
	// (route level, else virtual host level, else route config level), nil
	// when none.
	Fault *Fault
	Cors  *Cors
}

const (
	pathPrefix uint8 = iota
	pathExact
	pathRegex
	pathSeparated
	pathConnect
)

// Compile validates and compiles rc. The error names the virtual host,
// route and field that weft-proxy cannot honour; the caller NACKs with it.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	if rc == nil {
		return nil, fmt.Errorf("route configuration is nil")
	}
	base := fmt.Sprintf("route_config %q", rc.GetName())
	if err := xdsfield.Check(rc, base, "name", "virtual_hosts", "response_headers_to_add",
		"response_headers_to_remove", "request_headers_to_add", "request_headers_to_remove",
		"validate_clusters", "typed_per_filter_config", "metadata", "ignore_port_in_host_matching",
		"max_direct_response_body_size_bytes"); err != nil {
		return nil, err
	}
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	var err error
	if t.Headers, err = compileHeaders(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
		rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove(), base); err != nil {
		return nil, err
	}
	top, err := compilePerFilter(rc.GetTypedPerFilterConfig(), base+".typed_per_filter_config")
	if err != nil {
		return nil, err
	}
	for i, vh := range rc.GetVirtualHosts() {
		path := fmt.Sprintf("%s.virtual_hosts[%d %q]", base, i, vh.GetName())
		v, err := compileVHost(vh, t, top, path)
		if err != nil {
			return nil, err
		}
		t.vhosts = append(t.vhosts, v)
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			dup := false
			switch {
			case d == "*":
				dup = t.star != nil
				t.star = v
			case strings.HasPrefix(d, "*"):
				dup = hasWildcard(t.suffixes, d[1:])
				t.suffixes = append(t.suffixes, wildcard{d[1:], v})
			case strings.HasSuffix(d, "*"):
				dup = hasWildcard(t.prefixes, d[:len(d)-1])
				t.prefixes = append(t.prefixes, wildcard{d[:len(d)-1], v})
			case d == "" || strings.Contains(d, "*"):
				return nil, fmt.Errorf("%s.domains: invalid domain %q", path, d)
			default:
				_, dup = t.exact[d]
				t.exact[d] = v
			}
			if dup {
				// Envoy rejects a domain that appears in two virtual hosts.
				return nil, fmt.Errorf("%s.domains: domain %q is already used by another virtual host", path, d)
			}
		}
	}
	byLen := func(w []wildcard) {
		sort.SliceStable(w, func(i, j int) bool { return len(w[i].part) > len(w[j].part) })
	}
	byLen(t.suffixes)
	byLen(t.prefixes)
	return t, nil
}

func hasWildcard(ws []wildcard, part string) bool {
	for _, w := range ws {
		if w.part == part {
			return true
		}
	}
	return false
}

// VirtualHosts lists the table's virtual hosts in configuration order.
func (t *Table) VirtualHosts() []*VirtualHost { return t.vhosts }

// perFilter holds the per-filter configs inherited down the hierarchy.
type perFilter struct {
	fault *Fault
	cors  *Cors
}

func compileVHost(vh *routev3.VirtualHost, t *Table, parent perFilter, path string) (*VirtualHost, error) {
	if err := xdsfield.Check(vh, path, "name", "domains", "routes", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"cors", "typed_per_filter_config", "retry_policy", "include_request_attempt_count",
		"include_attempt_count_in_response", "metadata"); err != nil {
		return nil, err
	}
	if len(vh.GetDomains()) == 0 {
		return nil, fmt.Errorf("%s.domains: at least one domain is required", path)
	}
	v := &VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains(), Table: t,
		IncludeAttemptCount:         vh.GetIncludeRequestAttemptCount(),
		IncludeAttemptCountResponse: vh.GetIncludeAttemptCountInResponse()}
	var err error
	if v.Headers, err = compileHeaders(vh.GetRequestHeadersToAdd(), vh.GetRequestHeadersToRemove(),
		vh.GetResponseHeadersToAdd(), vh.GetResponseHeadersToRemove(), path); err != nil {
		return nil, err
	}
	pf, err := compilePerFilter(vh.GetTypedPerFilterConfig(), path+".typed_per_filter_config")
	if err != nil {
		return nil, err
	}
	if vh.GetCors() != nil && pf.cors == nil {
		if pf.cors, err = compileCors(vh.GetCors(), path+".cors"); err != nil {
			return nil, err
		}
	}
	pf = pf.inherit(parent)
	var retry *RetryPolicy
	if vh.GetRetryPolicy() != nil {
		if retry, err = compileRetry(vh.GetRetryPolicy(), path+".retry_policy"); err != nil {
			return nil, err
		}
	}
	for i, r := range vh.GetRoutes() {
		rp := fmt.Sprintf("%s.routes[%d %q]", path, i, r.GetName())
		cr, err := compileRoute(r, v, pf, retry, rp)
		if err != nil {
			return nil, err
		}
		v.Routes = append(v.Routes, cr)
	}
	return v, nil
}

func (p perFilter) inherit(parent perFilter) perFilter {
	if p.fault == nil {
		p.fault = parent.fault
	}
	if p.cors == nil {
		p.cors = parent.cors
	}
	return p
}

func compileRoute(r *routev3.Route, v *VirtualHost, parent perFilter, vhRetry *RetryPolicy, path string) (*Route, error) {
	if err := xdsfield.Check(r, path, "name", "match", "route", "redirect", "direct_response",
		"metadata", "decorator", "typed_per_filter_config", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	out := &Route{Name: r.GetName(), VHost: v}
	if d := r.GetDecorator(); d != nil {
		if err := xdsfield.Check(d, path+".decorator", "operation", "propagate"); err != nil {
			return nil, err
		}
		out.Operation = d.GetOperation()
		out.Propagate = d.GetPropagate() == nil || d.GetPropagate().GetValue()
	}
	if err := out.compileMatch(r.GetMatch(), path+".match"); err != nil {
		return nil, err
	}
	var err error
	if out.Headers, err = compileHeaders(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(),
		r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), path); err != nil {
		return nil, err
	}
	pf, err := compilePerFilter(r.GetTypedPerFilterConfig(), path+".typed_per_filter_config")
	if err != nil {
		return nil, err
	}
	if ra := r.GetRoute(); ra != nil && ra.GetCors() != nil && pf.cors == nil {
		if pf.cors, err = compileCors(ra.GetCors(), path+".route.cors"); err != nil {
			return nil, err
		}
	}
	pf = pf.inherit(parent)
	out.Fault, out.Cors = pf.fault, pf.cors
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		out.Kind = ActionRoute
		out.Action, err = compileAction(a.Route, vhRetry, path+".route")
	case *routev3.Route_Redirect:
		out.Kind = ActionRedirect
		out.Redirect, err = compileRedirect(a.Redirect, path+".redirect")
	case *routev3.Route_DirectResponse:
		out.Kind = ActionDirect
		out.Direct, err = compileDirect(a.DirectResponse, path+".direct_response")
	default:
		err = fmt.Errorf("%s: action %T not supported by weft-proxy", path, a)
	}
	if err != nil {
		return nil, err
	}
	if out.connect && out.Kind == ActionRoute && !out.Action.upgradeSet("CONNECT") {
		// A connect_matcher route is only usable with CONNECT upgrades on;
		// Envoy requires it at HCM or route level. Record it on the route.
		out.Action.Upgrades = append(out.Action.Upgrades, Upgrade{Type: "CONNECT", Enabled: true, implied: true})
	}
	return out, nil
}

func (r *Route) compileMatch(m *routev3.RouteMatch, path string) error {
	if m == nil {
		return fmt.Errorf("%s: missing match", path)
	}
	if err := xdsfield.Check(m, path, "prefix", "path", "safe_regex", "path_separated_prefix",
		"connect_matcher", "case_sensitive", "headers", "query_parameters", "runtime_fraction", "grpc", "dynamic_metadata"); err != nil {
		return err
	}
	for i, dm := range m.GetDynamicMetadata() {
		mm, err := CompileMetadataMatch(dm, fmt.Sprintf("%s.dynamic_metadata[%d]", path, i))
		if err != nil {
			return err
		}
		r.meta = append(r.meta, mm)
	}
	r.ignoreCase = m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		r.pathKind, r.path = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		r.pathKind, r.path = pathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex, path+".safe_regex")
		if err != nil {
			return err
		}
		r.pathKind, r.re = pathRegex, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if strings.ContainsAny(p.PathSeparatedPrefix, "?#") || strings.HasSuffix(p.PathSeparatedPrefix, "/") {
			return fmt.Errorf("%s.path_separated_prefix: %q must not end in / or contain ? or #", path, p.PathSeparatedPrefix)
		}
		r.pathKind, r.path = pathSeparated, p.PathSeparatedPrefix
	case *routev3.RouteMatch_ConnectMatcher_:
		r.pathKind, r.connect = pathConnect, true
	default:
		return fmt.Errorf("%s: path specifier %T not supported by weft-proxy", path, p)
	}
	if r.ignoreCase && r.pathKind != pathRegex {
		r.path = strings.ToLower(r.path)
	}
	r.grpc = m.GetGrpc() != nil
	for i, h := range m.GetHeaders() {
		hm, err := CompileHeaderMatch(h, fmt.Sprintf("%s.headers[%d]", path, i))
		if err != nil {
			return err
		}
		r.headers = append(r.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := compileQueryMatch(q, fmt.Sprintf("%s.query_parameters[%d]", path, i))
		if err != nil {
			return err
		}
		r.query = append(r.query, qm)
	}
	if m.GetRuntimeFraction() != nil {
		f := compileRuntimeFraction(m.GetRuntimeFraction())
		r.fraction, r.hasFraction = &f, true
	}
	return nil
}

// Select returns the virtual host for an authority (Host header), or nil.
// Envoy's order: exact domain, longest suffix wildcard, longest prefix
// wildcard, then "*". Matching is case-insensitive on the whole authority,
// so "foo:80" matches only a port-qualified domain.
func (t *Table) Select(host string) *VirtualHost {
	if v, ok := t.exact[host]; ok {
		return v
	}
	lower := host
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			lower = strings.ToLower(host)
			break
		}
	}
	if lower != host {
		if v, ok := t.exact[lower]; ok {
			return v
		}
	}
	for _, w := range t.suffixes {
		// The wildcard must cover at least one character.
		if len(lower) > len(w.part) && strings.HasSuffix(lower, w.part) {
			return w.vhost
		}
	}
	for _, w := range t.prefixes {
		if len(lower) > len(w.part) && strings.HasPrefix(lower, w.part) {
			return w.vhost
		}
	}
	return t.star
}

// Match returns the virtual host and the first matching route for r; the
// route is nil when no route matches (404 NR), the virtual host is nil when
// none matches the authority.
func (t *Table) Match(r *http.Request) (*VirtualHost, *Route) {
	v := t.Select(r.Host)
	if v == nil {
		return nil, nil
	}
	for _, rt := range v.Routes {
		if rt.Matches(r) {
			return v, rt
		}
	}
	return v, nil
}

// Matches reports whether the route's match accepts r.
func (rt *Route) Matches(r *http.Request) bool {
	if rt.connect != (r.Method == http.MethodConnect) {
		return false
	}
	if !rt.connect {
		p := r.URL.EscapedPath()
		if p == "" {
			p = "/"
		}
		if !rt.matchPath(p) {
			return false
		}
	}
	if rt.grpc && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return false
	}
	for _, h := range rt.headers {
		if !h.Match(r) {
			return false
		}
	}
	for _, q := range rt.query {
		if !q.match(r.URL.RawQuery) {
			return false
		}
	}
	if len(rt.meta) > 0 {
		l := metadataFrom(r)
		for _, m := range rt.meta {
			if !m.Match(l) {
				return false
			}
		}
	}
	if rt.hasFraction && !rt.fraction.Hit() {
		return false
	}
	return true
}

func (rt *Route) matchPath(p string) bool {
	switch rt.pathKind {
	case pathPrefix:
		if rt.ignoreCase {
			return len(p) >= len(rt.path) && strings.EqualFold(p[:len(rt.path)], rt.path)
		}
		return strings.HasPrefix(p, rt.path)
	case pathExact:
		if rt.ignoreCase {
			return strings.EqualFold(p, rt.path)
		}
		return p == rt.path
	case pathRegex:
		return rt.re.MatchString(p)
	case pathSeparated:
		if len(p) < len(rt.path) {
			return false
		}
		head := p[:len(rt.path)]
		if rt.ignoreCase {
			if !strings.EqualFold(head, rt.path) {
				return false
			}
		} else if head != rt.path {
			return false
		}
		return len(p) == len(rt.path) || p[len(rt.path)] == '/'
	}
	return false
}
