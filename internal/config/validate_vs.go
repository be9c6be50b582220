package config

import (
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

func init() {
	specValidators[KindVirtualService] = func(v *validator, m proto.Message) { v.virtualService(m.(*networking.VirtualService)) }
}

// The rules follow Istio's pkg/config/validation (VirtualService section)
// and the VirtualService reference docs.
func (v *validator) virtualService(vs *networking.VirtualService) {
	delegate := len(vs.Hosts) == 0
	if delegate {
		// A VirtualService without hosts is a delegate: it is only
		// reachable from another VirtualService's http[].delegate.
		if len(vs.Gateways) > 0 {
			v.errorf("spec.gateways", "delegate virtual service (no hosts) must not specify gateways")
		}
		if len(vs.Tls) > 0 || len(vs.Tcp) > 0 {
			v.errorf("spec", "delegate virtual service (no hosts) supports http routes only")
		}
	}
	toMesh := len(vs.Gateways) == 0
	for i, g := range vs.Gateways {
		p := fmt.Sprintf("spec.gateways[%d]", i)
		v.gatewayName(p, g)
		if g == "mesh" {
			toMesh = true
		}
	}
	valid := true
	for i, h := range vs.Hosts {
		p := fmt.Sprintf("spec.hosts[%d]", i)
		switch {
		case strings.Contains(h, "/"):
			v.errorf(p, "host %q must not contain a namespace (\"ns/\" is for Gateway and Sidecar hosts)", h)
			valid = false
		case isIP(h):
		case h == "*" && toMesh:
			v.errorf(p, "wildcard host * is not allowed for virtual services bound to the mesh gateway")
			valid = false
		default:
			if msg := checkWildcardHost(h); msg != "" {
				v.errorf(p, "%s", msg)
				valid = false
			}
		}
	}
	if valid {
		for i := range vs.Hosts {
			for j := i + 1; j < len(vs.Hosts); j++ {
				if hostMatches(vs.Hosts[i], vs.Hosts[j]) {
					v.errorf(fmt.Sprintf("spec.hosts[%d]", j), "duplicate hosts in virtual service: %s & %s", vs.Hosts[i], vs.Hosts[j])
				}
			}
		}
	}
	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		v.errorf("spec", "http, tcp or tls must be provided in virtual service")
	}
	// Istio's ValidateVirtualService: routing on JWT claims needs the
	// jwt_authn filter's result, which only gateways re-match routes on;
	// a VirtualService that also applies to sidecars may not use it.
	appliesToGateway := len(vs.Gateways) > 0 && !toMesh
	for i, r := range vs.Http {
		p := fmt.Sprintf("spec.http[%d]", i)
		if !appliesToGateway {
			for j, m := range r.Match {
				for _, hs := range []map[string]*networking.StringMatch{m.GetHeaders(), m.GetWithoutHeaders()} {
					for _, k := range sortedMatchKeys(hs) {
						if strings.HasPrefix(k, "@request.auth.claims.") || strings.HasPrefix(k, "@request.auth.claims[") {
							v.errorf(fmt.Sprintf("%s.match[%d]", p, j), "JWT claim based routing (key: %s) is only supported for gateway, found no gateways: %v", k, vs.Gateways)
						}
					}
				}
			}
		}
		v.httpRoute(p, r, delegate)
	}
	for i, r := range vs.Tls {
		v.tlsRoute(fmt.Sprintf("spec.tls[%d]", i), r, vs.Hosts)
	}
	for i, r := range vs.Tcp {
		p := fmt.Sprintf("spec.tcp[%d]", i)
		for j, m := range r.Match {
			mp := fmt.Sprintf("%s.match[%d]", p, j)
			for k, s := range m.DestinationSubnets {
				v.subnet(fmt.Sprintf("%s.destinationSubnets[%d]", mp, k), s)
			}
			// Istio's validateTCPMatch does not check sourceSubnet.
			v.optPort(mp+".port", m.Port)
			v.labels(mp+".sourceLabels", m.SourceLabels)
			for k, g := range m.Gateways {
				v.gatewayName(fmt.Sprintf("%s.gateways[%d]", mp, k), g)
			}
		}
		if len(r.Route) == 0 {
			v.errorf(p, "TCP route is required")
		}
		v.routeDestinations(p+".route", r.Route)
	}
	v.exportTo("spec.exportTo", vs.ExportTo, false)
}

func (v *validator) httpRoute(p string, r *networking.HTTPRoute, delegate bool) {
	v.httpRouteConflict(p, r, delegate)
	v.headers(p+".headers", r.Headers)
	v.authorityRewrite(p, r)
	for i, m := range r.Match {
		v.httpMatch(fmt.Sprintf("%s.match[%d]", p, i), m)
	}
	if r.Redirect != nil {
		v.redirect(p+".redirect", r.Redirect, r.Match)
	}
	if d := r.DirectResponse; d != nil {
		// Istio's validateHTTPStatus lets 600 through; Envoy's
		// direct_response takes [200, 600), so 600 stays an error here.
		if d.Status < 200 || d.Status > 599 {
			v.errorf(p+".directResponse.status", "status %d is not a valid HTTP status (200-599)", d.Status)
		}
		// validateHTTPDirectResponse: body size.
		size := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes())
		switch {
		case size > 1<<20:
			v.errorf(p+".directResponse.body", "large direct_responses may impact control plane performance, must be less than 1MB")
		case size > 100<<10:
			v.warnf(p+".directResponse.body", "large direct_responses may impact control plane performance")
		}
	}
	if r.Delegate != nil && r.Delegate.Name == "" {
		v.errorf(p+".delegate.name", "delegate name is required")
	}
	if r.Delegate != nil && r.Delegate.Namespace != "" {
		v.dnsLabel(p+".delegate.namespace", r.Delegate.Namespace)
	}
	if rw := r.Rewrite; rw != nil {
		if rw.Uri != "" && rw.UriRegexRewrite != nil {
			v.errorf(p+".rewrite", "rewrite may set only one of uri and uriRegexRewrite")
		}
		if rw.Uri == "" && rw.Authority == "" && rw.UriRegexRewrite == nil {
			v.errorf(p+".rewrite", "rewrite must specify uri, uriRegexRewrite or authority")
		}
		// validateURIRegexRewrite: both fields, and the match as any regex.
		if rr := rw.UriRegexRewrite; rr != nil {
			if rr.Match == "" || rr.Rewrite == "" {
				v.errorf(p+".rewrite.uriRegexRewrite", "UriRegexRewrite requires both Rewrite and Match fields to be specified")
			} else if len(rr.Match) > 1024 {
				v.errorf(p+".rewrite.uriRegexRewrite.match", "regex is too large, max length allowed is 1024")
			} else {
				v.regex(p+".rewrite.uriRegexRewrite.match", rr.Match)
			}
		}
	}
	if r.Timeout != nil {
		v.duration(p+".timeout", r.Timeout)
	}
	v.retries(p+".retries", r.Retries)
	v.fault(p+".fault", r.Fault)
	if r.Mirror != nil {
		v.destination(p+".mirror", r.Mirror)
	}
	for i, m := range r.Mirrors {
		mp := fmt.Sprintf("%s.mirrors[%d]", p, i)
		if m == nil {
			v.errorf(mp, "mirror cannot be null")
			continue
		}
		if m.Destination == nil {
			v.errorf(mp, "destination is required for mirrors")
		} else {
			v.destination(mp+".destination", m.Destination)
		}
		v.mirrorPercent(mp+".percentage", m.Percentage)
	}
	if r.MirrorPercent != nil { //nolint:staticcheck // the deprecated field is what is checked
		if r.MirrorPercent.Value > 100 {
			v.errorf(p+".mirrorPercent", "mirrorPercent %d is not in range 0..100", r.MirrorPercent.Value)
		}
		// Istio: validateHTTPRoute warns about the deprecated field.
		v.warnf(p+".mirrorPercent", `using deprecated setting "mirrorPercent", use "mirrorPercentage" instead`)
	}
	v.mirrorPercent(p+".mirrorPercentage", r.MirrorPercentage)
	v.cors(p+".corsPolicy", r.CorsPolicy)
	total := int32(0)
	for i, d := range r.Route {
		dp := fmt.Sprintf("%s.route[%d]", p, i)
		if d == nil {
			v.errorf(dp, "weight may not be nil")
			continue
		}
		v.headers(dp+".headers", d.Headers)
		if d.Destination == nil {
			v.errorf(dp, "destination is required")
		} else {
			v.destination(dp+".destination", d.Destination)
		}
		v.weight(dp+".weight", d.Weight)
		total += d.Weight
	}
	// Istio (validateHTTPRouteDestinations): weights are relative; only
	// several destinations that all weigh 0 are an error.
	if len(r.Route) > 1 && total == 0 {
		v.errorf(p+".route", "total destination weight = 0")
	}
}

// weight is Istio's validateWeight: not negative (no upper bound).
func (v *validator) weight(p string, w int32) {
	if w < 0 {
		v.errorf(p, "weight %d < 0", w)
	}
}

// httpRouteConflict is Istio's validateHTTPRouteConflict
// (pkg/config/validation/virtualservice.go): a root route (one that
// delegates) may not also route or redirect and nothing else is checked;
// otherwise redirect and directResponse exclude route, fault, rewrite and
// each other, and one of route, redirect, directResponse is required.
func (v *validator) httpRouteConflict(p string, r *networking.HTTPRoute, delegate bool) {
	if !delegate && r.Delegate != nil {
		if r.Redirect != nil {
			v.errorf(p+".redirect", "root HTTP route %s must not specify redirect", r.Name)
		}
		if r.Route != nil {
			v.errorf(p+".route", "root HTTP route %s must not specify route", r.Name)
		}
		return
	}
	if delegate && r.Delegate != nil {
		v.errorf(p+".delegate", "delegate HTTP route cannot contain delegate")
	}
	switch {
	case r.Redirect != nil:
		if len(r.Route) > 0 {
			v.errorf(p+".route", "HTTP route cannot contain both route and redirect")
		}
		if r.Fault != nil {
			v.errorf(p+".fault", "HTTP route cannot contain both fault and redirect")
		}
		if r.Rewrite != nil {
			v.errorf(p+".rewrite", "HTTP route rule cannot contain both rewrite and redirect")
		}
		if r.DirectResponse != nil {
			v.errorf(p+".directResponse", "HTTP route rule cannot contain both direct_response and redirect")
		}
	case r.DirectResponse != nil:
		if len(r.Route) > 0 {
			v.errorf(p+".route", "HTTP route cannot contain both route and direct_response")
		}
		if r.Fault != nil {
			v.errorf(p+".fault", "HTTP route cannot contain both fault and direct_response")
		}
		if r.Rewrite != nil {
			v.errorf(p+".rewrite", "HTTP route rule cannot contain both rewrite and direct_response")
		}
	case len(r.Route) == 0:
		v.errorf(p, "HTTP route, redirect or direct_response is required")
	}
	if r.Mirror != nil && len(r.Mirrors) > 0 {
		v.errorf(p+".mirrors", "HTTP route cannot contain both mirror and mirrors")
	}
}

// authorityRewrite is Istio's validateAuthorityRewrite: the authority is
// rewritten in one place only (rewrite.authority, or a request header
// set/add of Host or :authority).
func (v *validator) authorityRewrite(p string, r *networking.HTTPRoute) {
	current := r.Rewrite.GetAuthority()
	for _, ops := range []map[string]string{r.Headers.GetRequest().GetSet(), r.Headers.GetRequest().GetAdd()} {
		for _, k := range sortedKeys(ops) {
			if !strings.EqualFold(k, ":authority") && !strings.EqualFold(k, "host") {
				continue
			}
			if current != "" {
				v.errorf(p+".headers", "authority header cannot be set multiple times: have %q, attempting to set %q", current, ops[k])
				return
			}
			current = ops[k]
		}
	}
}

// mirrorPercent is Istio's mirror percentage rule (validateHTTPRoute,
// validateHTTPMirrors): within [0, 100], no lower precision bound.
func (v *validator) mirrorPercent(p string, pc *networking.Percent) {
	if pc == nil {
		return
	}
	if pc.Value > 100 {
		v.errorf(p, "mirror percentage must have a max value of 100 (it has %f)", pc.Value)
	}
	if pc.Value < 0 {
		v.errorf(p, "mirror percentage must have a min value of 0 (it has %f)", pc.Value)
	}
}

func (v *validator) routeDestinations(p string, ds []*networking.RouteDestination) {
	total := int32(0)
	for i, d := range ds {
		dp := fmt.Sprintf("%s[%d]", p, i)
		if d == nil {
			v.errorf(dp, "weight may not be nil")
			continue
		}
		if d.Destination == nil {
			v.errorf(dp, "destination is required")
		} else {
			v.destination(dp+".destination", d.Destination)
		}
		v.weight(dp+".weight", d.Weight)
		total += d.Weight
	}
	// Istio's validateRouteDestinations: relative weights, not all 0.
	if len(ds) > 1 && total == 0 {
		v.errorf(p, "total destination weight = 0")
	}
}

func (v *validator) tlsRoute(p string, r *networking.TLSRoute, hosts []string) {
	if len(r.Match) == 0 {
		v.errorf(p, "TLS route must have at least one match condition")
	}
	for i, m := range r.Match {
		mp := fmt.Sprintf("%s.match[%d]", p, i)
		if len(m.SniHosts) == 0 {
			v.errorf(mp, "TLS match must have at least one SNI host")
		}
		for j, sni := range m.SniHosts {
			sp := fmt.Sprintf("%s.sniHosts[%d]", mp, j)
			// Istio's validateSniHost: an IPv4 address passes as a domain
			// name; one that does not (IPv6) is only a warning.
			if isIP(sni) && strings.Contains(sni, ":") {
				v.warnf(sp, "using an IP address (%q) goes against SNI spec and most clients do not support this", sni)
				continue
			}
			if !isIP(sni) {
				if msg := checkWildcardHost(sni); msg != "" {
					v.errorf(sp, "%s", msg)
					continue
				}
			}
			covered := false
			for _, h := range hosts {
				if hostSubsetOf(sni, h) {
					covered = true
					break
				}
			}
			if !covered {
				v.errorf(sp, "SNI host %q is not a compatible subset of any of the virtual service hosts: [%s]", sni, strings.Join(hosts, ", "))
			}
		}
		for k, s := range m.DestinationSubnets {
			v.subnet(fmt.Sprintf("%s.destinationSubnets[%d]", mp, k), s)
		}
		v.optPort(mp+".port", m.Port)
		v.labels(mp+".sourceLabels", m.SourceLabels)
		for k, g := range m.Gateways {
			v.gatewayName(fmt.Sprintf("%s.gateways[%d]", mp, k), g)
		}
	}
	if len(r.Route) == 0 {
		v.errorf(p, "TLS route is required")
	}
	v.routeDestinations(p+".route", r.Route)
}

// httpMatch mirrors Istio's validateHTTPRouteMatchRequest: header names
// are RFC 7230 tokens, a pseudo header or a JWT claim
// (ValidateHTTPHeaderNameOrJwtClaimRoute); a header match may not be null;
// prefix matches may be empty only for the uri; withoutHeaders' regex "*"
// means presence and is not a regex.
func (v *validator) httpMatch(p string, m *networking.HTTPMatchRequest) {
	if m == nil {
		return
	}
	v.stringMatchRegex(p+".uri", m.Uri)
	v.stringMatch(p+".scheme", m.Scheme)
	v.stringMatch(p+".method", m.Method)
	v.stringMatch(p+".authority", m.Authority)
	for _, k := range sortedMatchKeys(m.Headers) {
		hp := p + ".headers[" + k + "]"
		if m.Headers[k] == nil {
			v.errorf(hp, "header match %v cannot be null", k)
		}
		v.matchHeaderName(hp, k)
		v.stringMatch(hp, m.Headers[k])
	}
	for _, k := range sortedMatchKeys(m.WithoutHeaders) {
		hp := p + ".withoutHeaders[" + k + "]"
		v.matchHeaderName(hp, k)
		if sm := m.WithoutHeaders[k]; sm != nil && sm.GetRegex() != "*" {
			v.stringMatch(hp, sm)
		}
	}
	for _, k := range sortedMatchKeys(m.QueryParams) {
		v.stringMatch(p+".queryParams["+k+"]", m.QueryParams[k])
	}
	v.optPort(p+".port", m.Port)
	v.labels(p+".sourceLabels", m.SourceLabels)
	for i, g := range m.Gateways {
		v.gatewayName(fmt.Sprintf("%s.gateways[%d]", p, i), g)
	}
	if m.SourceNamespace != "" {
		v.dnsLabel(p+".sourceNamespace", m.SourceNamespace)
	}
}

// stringMatch is Istio's validateStringMatch: a prefix may not be empty,
// and a regex is checked by stringMatchRegex.
func (v *validator) stringMatch(p string, sm *networking.StringMatch) {
	if pre, ok := sm.GetMatchType().(*networking.StringMatch_Prefix); ok && pre.Prefix == "" {
		v.errorf(p+".prefix", "prefix string match should not be empty")
	}
	v.stringMatchRegex(p, sm)
}

// stringMatchRegex is Istio's validateStringMatchRegexp: a regex may not
// be empty and must be valid RE2 (what Envoy runs) of at most 1,024 bytes
// (validateStringRegexp, Envoy's program size limit approximated).
func (v *validator) stringMatchRegex(p string, sm *networking.StringMatch) {
	re, ok := sm.GetMatchType().(*networking.StringMatch_Regex)
	if !ok {
		return
	}
	if re.Regex == "" {
		v.errorf(p+".regex", "regex string match should not be empty")
		return
	}
	if len(re.Regex) > 1024 {
		v.errorf(p+".regex", "regex is too large, max length allowed is 1024")
		return
	}
	v.regex(p+".regex", re.Regex)
}

// matchHeaderName is Istio's ValidateHTTPHeaderNameOrJwtClaimRoute.
func (v *validator) matchHeaderName(p, name string) {
	switch {
	case name == "":
		v.errorf(p, "header name cannot be empty")
	case strings.HasPrefix(name, "@request.auth.claims.") || strings.HasPrefix(name, "@request.auth.claims["):
		// a JWT claim (routing on claims)
	case name == ":method" || name == ":scheme" || name == ":authority" || name == ":path" || name == ":status":
	case !isToken(name):
		v.errorf(p, "header name %s is not a valid header name", name)
	}
}

// isToken reports whether s is an RFC 7230 token (Istio's validHeaderNameRegex).
func isToken(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return s != ""
}

func sortedMatchKeys(m map[string]*networking.StringMatch) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *validator) regex(p, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.errorf(p, "invalid regex %q: %s; Istio uses RE2 syntax", re, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

func (v *validator) destination(p string, d *networking.Destination) {
	switch {
	case d.Host == "":
		v.errorf(p+".host", "destination host is required")
	case d.Host == "*":
		v.errorf(p+".host", "invalid destination host *")
	case isIP(d.Host):
	default:
		if msg := checkWildcardHost(d.Host); msg != "" {
			v.errorf(p+".host", "%s", msg)
		}
	}
	if d.Subset != "" && !isDNSLabel(d.Subset) {
		v.errorf(p+".subset", "subset name %q is invalid: must be a lower-case RFC 1123 label", d.Subset)
	}
	if d.Port != nil {
		v.port(p+".port.number", int64(d.Port.Number))
	}
}

// headers mirrors Istio's header operation rules (validateHTTPRoute and
// validateHTTPRouteDestinations): request set/add may name Host or
// :authority but no other pseudo header
// (ValidateHTTPHeaderWithAuthorityOperationName); request remove and
// every response operation may name neither (ValidateHTTPHeaderOperationName);
// names are not otherwise checked; values must parse as Envoy's header
// formatter (ValidateHTTPHeaderValue).
func (v *validator) headers(p string, h *networking.Headers) {
	if h == nil {
		return
	}
	for _, op := range []struct {
		name    string
		o       *networking.Headers_HeaderOperations
		request bool
	}{{"request", h.Request, true}, {"response", h.Response, false}} {
		if op.o == nil {
			continue
		}
		for _, set := range []struct {
			verb string
			m    map[string]string
		}{{"set", op.o.Set}, {"add", op.o.Add}} {
			for _, k := range sortedKeys(set.m) {
				kp := p + "." + op.name + "." + set.verb + "[" + k + "]"
				v.headerOperationName(kp, k, op.request)
				if err := headerValueError(set.m[k]); err != nil {
					v.errorf(kp, "%v", err)
				}
			}
		}
		for i, k := range op.o.Remove {
			v.headerOperationName(fmt.Sprintf("%s.%s.remove[%d]", p, op.name, i), k, false)
		}
	}
}

func (v *validator) headerOperationName(p, name string, authorityOK bool) {
	internal := strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")
	authority := strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
	switch {
	case name == "":
		v.errorf(p, "header name cannot be empty")
	case authorityOK && authority:
	case strings.EqualFold(name, "host"):
		v.errorf(p, "invalid header %q: cannot set Host header", name)
	case internal:
		v.errorf(p, "invalid header %q: header cannot have \":\" prefix", name)
	}
}

// corsHeaderName is Istio's ValidateCORSHTTPHeaderName: "*" or a token.
func (v *validator) corsHeaderName(p, name string) {
	switch {
	case name == "":
		v.errorf(p, "header name cannot be empty")
	case name != "*" && !isToken(name):
		v.errorf(p, "header name %s is not a valid header name", name)
	}
}

func (v *validator) headerName(p, name string) {
	if name == "" {
		v.errorf(p, "header name cannot be empty")
		return
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("\"(),/;<=>?@[\\]{}", c) {
			v.errorf(p, "invalid header name %q", name)
			return
		}
	}
}

func (v *validator) redirect(p string, r *networking.HTTPRedirect, matches []*networking.HTTPMatchRequest) {
	// validateHTTPRedirect: prefixRewrite needs prefix uri matches.
	if r.PrefixRewrite != "" && r.Uri == "" {
		for _, m := range matches {
			if _, prefix := m.GetUri().GetMatchType().(*networking.StringMatch_Prefix); m.GetUri() != nil && !prefix {
				v.errorf(p+".prefixRewrite", "redirect prefix_rewrite requires all URI matches to use prefix match type")
				break
			}
		}
	}
	if r.Uri == "" && r.Authority == "" && r.Scheme == "" && r.RedirectPort == nil && r.PrefixRewrite == "" {
		v.errorf(p, "redirect must specify uri, authority, scheme or port")
	}
	if r.Uri != "" && r.PrefixRewrite != "" {
		v.errorf(p, "redirect may set only one of uri and prefixRewrite")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		v.errorf(p+".redirectCode", "%d is not a valid redirect code, must be 3xx", r.RedirectCode)
	}
	if pt, ok := r.RedirectPort.(*networking.HTTPRedirect_Port); ok {
		v.port(p+".port", int64(pt.Port))
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		v.errorf(p+".scheme", "scheme %q must be http or https", r.Scheme)
	}
}

// Retry policies Envoy understands in x-envoy-retry-on and
// x-envoy-retry-grpc-on; Istio also accepts bare HTTP status codes.
var retryOnPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "envoy-ratelimited": true, "retriable-4xx": true,
	"refused-stream": true, "retriable-status-codes": true, "retriable-headers": true,
	"http3-post-connect-failure": true,
	"cancelled":                  true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

func (v *validator) retries(p string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		v.errorf(p+".attempts", "attempts cannot be negative")
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		v.errorf(p, "http retry policy configured when attempts are set to 0 (disabled)")
	}
	if r.PerTryTimeout != nil {
		v.duration(p+".perTryTimeout", r.PerTryTimeout)
	}
	if r.Backoff != nil {
		v.duration(p+".backoff", r.Backoff)
	}
	if r.RetryOn != "" {
		// Istio's ValidateHTTPRetry splits on "," without trimming.
		for _, pol := range strings.Split(r.RetryOn, ",") {
			if code, err := strconv.Atoi(pol); err == nil && http.StatusText(code) != "" {
				continue
			}
			if !retryOnPolicies[pol] {
				v.errorf(p+".retryOn", "%q is not a valid retryOn policy", pol)
			}
		}
	}
}

func (v *validator) fault(p string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		v.errorf(p, "HTTP fault injection must have an abort and/or a delay")
	}
	if d := f.Delay; d != nil {
		// The deprecated integer percent is not checked by Istio
		// (validateHTTPFaultInjectionDelay); only percentage is.
		v.percent(p+".delay.percentage", d.Percentage)
		switch t := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			v.duration(p+".delay.fixedDelay", t.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			v.errorf(p+".delay.exponentialDelay", "exponentialDelay is not supported")
		}
		// Istio accepts a delay without a type (validateHTTPFaultInjectionDelay
		// has no default case); it injects nothing.
	}
	if a := f.Abort; a != nil {
		v.percent(p+".abort.percentage", a.Percentage)
		switch t := a.ErrorType.(type) {
		// Istio: validateHTTPFaultInjectionAbort.
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			// Istio's check lets 600 through (status > 600 is its test),
			// but Envoy's FaultAbort takes 200-599 and Weft checks what it
			// publishes, so 600 stays an error here.
			if t.HttpStatus < 200 || t.HttpStatus > 599 {
				v.errorf(p+".abort.httpStatus", "HTTP status %d is not in range 200-599", t.HttpStatus)
			}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatusNames[t.GrpcStatus] {
				v.errorf(p+".abort.grpcStatus", "gRPC status %q is not supported (a code name such as NOT_FOUND)", t.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			v.errorf(p+".abort.http2Error", "http2Error is not supported")
		default:
			v.warnf(p+".abort", "abort configured, but error type not set")
		}
	}
}

func (v *validator) percent(p string, pc *networking.Percent) {
	if pc == nil {
		return
	}
	// Istio: 0, or a value in [0.0001, 100].
	if pc.Value < 0 || pc.Value > 100 || (pc.Value > 0 && pc.Value < 0.0001) {
		v.errorf(p+".value", "percentage %v is neither 0.0, nor in range [0.0001, 100.0]", pc.Value)
	}
}

var supportedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

func (v *validator) cors(p string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.AllowOrigins {
		op := fmt.Sprintf("%s.allowOrigins[%d]", p, i)
		if o == nil || o.MatchType == nil {
			v.errorf(op, "allowOrigins entry needs exact, prefix or regex")
			continue
		}
		// Istio's validateAllowOrigins: no empty exact, prefix or regex.
		if o.GetExact() == "" && o.GetPrefix() == "" && o.GetRegex() == "" {
			v.errorf(op, "'' is not a valid match type for CORS allow origins")
			continue
		}
		v.stringMatchRegex(op, o)
	}
	for i, m := range c.AllowMethods {
		if !supportedMethods[m] {
			v.errorf(fmt.Sprintf("%s.allowMethods[%d]", p, i), "%q is not a supported HTTP method", m)
		}
	}
	for i, h := range c.AllowHeaders {
		v.corsHeaderName(fmt.Sprintf("%s.allowHeaders[%d]", p, i), h)
	}
	for i, h := range c.ExposeHeaders {
		v.corsHeaderName(fmt.Sprintf("%s.exposeHeaders[%d]", p, i), h)
	}
	if c.MaxAge != nil {
		v.duration(p+".maxAge", c.MaxAge)
		if c.MaxAge.Nanos != 0 {
			v.errorf(p+".maxAge", "maxAge duration is accurate only to seconds precision")
		}
	}
}

// duration applies Istio's ValidateDuration: at least 1ms, millisecond
// precision.
func (v *validator) duration(p string, d *durationpb.Duration) {
	if err := d.CheckValid(); err != nil {
		v.errorf(p, "invalid duration: %v", err)
		return
	}
	dur := d.AsDuration()
	if dur < time.Millisecond {
		v.errorf(p, "duration %s must be at least 1ms", dur)
		return
	}
	if dur%time.Millisecond != 0 {
		v.errorf(p, "duration %s: only durations to ms precision are supported", dur)
	}
}

func (v *validator) port(p string, n int64) {
	if n < 1 || n > 65535 {
		v.errorf(p, "port number %d must be in the range 1..65535", n)
	}
}

// optPort checks a port that may be omitted (0).
func (v *validator) optPort(p string, n uint32) {
	if n != 0 {
		v.port(p, int64(n))
	}
}

func (v *validator) subnet(p, s string) {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			v.errorf(p, "%q is not a valid CIDR block", s)
		}
		return
	}
	if !isIP(s) {
		v.errorf(p, "%q is not a valid IP address", s)
	}
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// gatewayName checks a gateway reference: "mesh", "name" or "ns/name".
func (v *validator) gatewayName(p, g string) {
	if g == "mesh" {
		return
	}
	ns, name, ok := strings.Cut(g, "/")
	if !ok {
		if msg := checkFQDN(g); msg != "" {
			v.errorf(p, "invalid gateway name %q: %s", g, msg)
		}
		return
	}
	if ns == "" || name == "" {
		v.errorf(p, "config namespace and gateway name cannot be empty")
		return
	}
	if !isDNSLabel(ns) {
		v.errorf(p, "invalid value for namespace: %q", ns)
	}
	if !isDNSLabel(name) {
		v.errorf(p, "invalid value for gateway name: %q", name)
	}
}

// exportTo applies Istio's visibility rules: ".", "*", a namespace, and
// for ServiceEntry also "~"; no duplicates; "*" and "~" stand alone.
func (v *validator) exportTo(p string, list []string, serviceEntry bool) {
	seen := map[string]bool{}
	for i, e := range list {
		ep := fmt.Sprintf("%s[%d]", p, i)
		key := e
		if e == "." {
			key = v.r.Namespace
		}
		if seen[key] {
			v.errorf(ep, "duplicate entries in exportTo: %s", e)
			continue
		}
		seen[key] = true
		switch {
		case e == "." || e == "*":
		case e == "~" && serviceEntry:
		case isDNSLabel(e):
		default:
			v.errorf(ep, "invalid exportTo value %q: must be \".\", \"*\"%s or a namespace", e, map[bool]string{true: ", \"~\""}[serviceEntry])
		}
	}
	if len(list) > 1 && (seen["*"] || seen["~"]) {
		v.errorf(p, "cannot combine %q with other exportTo values", map[bool]string{true: "*", false: "~"}[seen["*"]])
	}
}

// grpcStatusNames are the gRPC status code names Istio accepts in a fault
// abort (doc/statuscodes.md).
var grpcStatusNames = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true, "DEADLINE_EXCEEDED": true,
	"NOT_FOUND": true, "ALREADY_EXISTS": true, "PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true,
	"FAILED_PRECONDITION": true, "ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true,
	"INTERNAL": true, "UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
