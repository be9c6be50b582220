package translate

import (
	"math"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	filterFault  = "envoy.filters.http.fault"
	filterCors   = "envoy.filters.http.cors"
	filterRouter = "envoy.filters.http.router"

	// Istio's default retry_on when a route sets no retries.
	defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
)

// routeScope says for which listener routes are built.
type routeScope struct {
	port     uint32   // the listener/service port (0: unknown, e.g. gateways)
	gateways []string // gateway names "ns/name" for routers; empty: sidecar ("mesh")
}

func (s routeScope) isGateway() bool { return len(s.gateways) > 0 }

// listenPort is the port a destination without one defaults to. Gateways
// have none: Istio needs the destination port when the service has several.
func (s routeScope) listenPort() uint32 {
	if s.isGateway() {
		return 0
	}
	return s.port
}

// httpRoutes translates a VirtualService's http section for one port,
// expanding delegates and dropping matches that do not apply to this proxy.
func (b *builder) httpRoutes(vs *networkingv1.VirtualService, scope routeScope) []*routev3.Route {
	var out []*routev3.Route
	for _, hr := range vs.Spec.Http {
		if hr == nil {
			continue
		}
		if hr.GetDelegate() != nil {
			d := b.delegate(hr.Delegate, vs.Namespace)
			if d == nil {
				continue // Istio drops a route whose delegate is missing or not exported
			}
			for _, dr := range d.Spec.Http {
				if dr == nil {
					continue
				}
				if dr.GetDelegate() != nil {
					continue // Istio allows one level of delegation
				}
				out = append(out, b.delegatedRoutes(hr, dr, d.Namespace, scope)...)
			}
			continue
		}
		out = append(out, b.routesFor(hr, hr.Match, vs.Namespace, scope)...)
	}
	decorate(out, vs.Name, scope.port)
	return out
}

func (b *builder) delegatedRoutes(root, d *networking.HTTPRoute, ns string, scope routeScope) []*routev3.Route {
	roots := root.Match
	if len(roots) == 0 {
		roots = []*networking.HTTPMatchRequest{nil}
	}
	ds := d.Match
	if len(ds) == 0 {
		ds = []*networking.HTTPMatchRequest{nil}
	}
	var matches []*networking.HTTPMatchRequest
	for _, rm := range roots {
		for _, dm := range ds {
			if m, ok := mergeMatch(rm, dm); ok {
				matches = append(matches, m)
			}
		}
	}
	if len(matches) == 0 {
		return nil
	}
	if len(matches) == 1 && matches[0] == nil {
		matches = nil
	}
	return b.routesFor(d, matches, ns, scope)
}

// matchApplies filters a match by port, gateways, source labels and source
// namespace against this proxy.
func (b *builder) matchApplies(m *networking.HTTPMatchRequest, ns string, scope routeScope) bool {
	if m == nil {
		return true
	}
	if m.Port != 0 && scope.port != 0 && m.Port != scope.port {
		return false
	}
	if len(m.Gateways) > 0 {
		if !scope.isGateway() {
			if !appliesToMesh(m.Gateways) {
				return false
			}
		} else if !gatewayListed(resolveGateways(m.Gateways, ns), scope.gateways) {
			return false
		}
	}
	if len(m.SourceLabels) > 0 && !labelsMatch(m.SourceLabels, b.p.Meta.Labels) {
		return false
	}
	if m.SourceNamespace != "" && m.SourceNamespace != b.p.Meta.Namespace {
		return false
	}
	return true
}

// routesFor builds one Envoy route per applicable match (Istio's shape).
func (b *builder) routesFor(hr *networking.HTTPRoute, matches []*networking.HTTPMatchRequest, ns string, scope routeScope) []*routev3.Route {
	if len(matches) == 0 {
		matches = []*networking.HTTPMatchRequest{nil}
	}
	var out []*routev3.Route
	for _, m := range matches {
		if !b.matchApplies(m, ns, scope) {
			continue
		}
		r := &routev3.Route{Name: hr.Name, Match: routeMatch(m)}
		if m != nil && m.Name != "" {
			if r.Name != "" {
				r.Name += "." + m.Name
			} else {
				r.Name = m.Name
			}
		}
		b.routeAction(r, hr, ns, scope)
		out = append(out, r)
	}
	return out
}

// routeAction fills redirect, direct response or forwarding.
func (b *builder) routeAction(r *routev3.Route, hr *networking.HTTPRoute, ns string, scope routeScope) {
	addHeaders(r, hr.Headers)
	if f := faultConfig(hr.Fault); f != nil {
		setFilterConfig(r, filterFault, f)
	}
	if c := corsConfig(hr.CorsPolicy); c != nil {
		setFilterConfig(r, filterCors, c)
	}
	switch {
	case hr.Redirect != nil:
		r.Action = &routev3.Route_Redirect{Redirect: redirectAction(hr.Redirect)}
		return
	case hr.DirectResponse != nil:
		dr := &routev3.DirectResponseAction{Status: hr.DirectResponse.Status}
		if body := hr.DirectResponse.Body; body != nil {
			if s := body.GetString_(); s != "" {
				dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
			} else if bs := body.GetBytes(); len(bs) > 0 {
				dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: bs}}
			}
		}
		r.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
		return
	}
	a := &routev3.RouteAction{Timeout: dur(0)} // Istio: no timeout unless the VS sets one
	if hr.Timeout != nil {
		a.Timeout = dur(hr.Timeout.AsDuration())
	}
	b.setDestinations(r, a, hr.Route, ns, scope)
	// As Istio: only a single-destination route with a consistent hash
	// keeps retries on the same host.
	a.RetryPolicy = b.retryPolicy(hr.Retries, len(hr.Route) == 1 && len(a.HashPolicy) > 0)
	if rw := hr.Rewrite; rw != nil {
		if rw.Uri != "" {
			a.PrefixRewrite = rw.Uri
		}
		if rr := rw.UriRegexRewrite; rr != nil {
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: rr.Match}, Substitution: rr.Rewrite}
		}
		if rw.Authority != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Authority}
		}
	}
	mirrors := hr.Mirrors
	if hr.Mirror != nil {
		mirrors = append([]*networking.HTTPMirrorPolicy{{Destination: hr.Mirror, Percentage: mirrorPercent(hr)}}, mirrors...)
	}
	for _, mp := range mirrors {
		if mp == nil {
			continue
		}
		name, ok := b.destinationCluster(mp.Destination, ns, scope.listenPort())
		if !ok {
			continue
		}
		frac := &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}
		if mp.Percentage != nil {
			frac = percentFraction(mp.Percentage.Value)
		}
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         name,
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: frac},
			TraceSampled:    wrapperspb.Bool(false),
		})
	}
	r.Action = &routev3.Route_Route{Route: a}
}

// mirrorPercent reads mirrorPercentage, or the deprecated mirrorPercent.
func mirrorPercent(hr *networking.HTTPRoute) *networking.Percent {
	if hr.MirrorPercentage != nil {
		return hr.MirrorPercentage
	}
	if hr.MirrorPercent != nil {
		return &networking.Percent{Value: float64(hr.MirrorPercent.Value)}
	}
	return nil
}

// setDestinations sets cluster or weighted_clusters, per-destination
// headers and the consistent-hash policy of the destination rule.
func (b *builder) setDestinations(r *routev3.Route, a *routev3.RouteAction, dests []*networking.HTTPRouteDestination, ns string, scope routeScope) {
	type dest struct {
		name   string
		weight uint32
		hd     *networking.Headers
	}
	var ds []dest
	var hash []*routev3.RouteAction_HashPolicy
	hashSame := true
	for i, d := range dests {
		if d == nil {
			continue
		}
		if len(dests) > 1 && d.Weight == 0 {
			continue // a zero-weight destination takes no traffic
		}
		name, ok := b.destinationCluster(d.Destination, ns, scope.listenPort())
		if !ok {
			name = blackholeCluster
		}
		w := uint32(d.Weight)
		if len(dests) == 1 {
			w = 100
		}
		ds = append(ds, dest{name, w, d.Headers})
		h := b.destinationHash(d.Destination, ns, scope.listenPort())
		if i == 0 {
			hash = h
		} else if !sameHash(hash, h) {
			hashSame = false
		}
	}
	if hashSame {
		a.HashPolicy = hash
	}
	switch len(ds) {
	case 0:
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: blackholeCluster}
	case 1:
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: ds[0].name}
		addHeaders(r, ds[0].hd)
	default:
		wc := &routev3.WeightedCluster{}
		for _, d := range ds {
			cw := &routev3.WeightedCluster_ClusterWeight{Name: d.name, Weight: u32(d.weight)}
			if h := d.hd; h != nil {
				cw.RequestHeadersToAdd = headerOptions(h.GetRequest())
				cw.RequestHeadersToRemove = h.GetRequest().GetRemove()
				cw.ResponseHeadersToAdd = headerOptions(h.GetResponse())
				cw.ResponseHeadersToRemove = h.GetResponse().GetRemove()
			}
			wc.Clusters = append(wc.Clusters, cw)
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
}

func sameHash(a, b []*routev3.RouteAction_HashPolicy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

// destinationCluster resolves a VS destination to an existing cluster name.
// The port is the destination's, else the service's only port, else the
// listener's. A destination Istio would send to a missing cluster (503 NC)
// reports false; callers use BlackHoleCluster, which fails the same way
// while keeping every referenced cluster defined.
func (b *builder) destinationCluster(d *networking.Destination, ns string, listenPort uint32) (string, bool) {
	svc, port, ok := b.destinationService(d, ns, listenPort)
	if !ok {
		return "", false
	}
	name := clusterName("outbound", port, d.Subset, svc.Hostname)
	if d.Subset != "" && !b.hasSubset(svc, d.Subset) {
		// Istio routes to the subset's cluster name even though no rule
		// defines it: there is no such cluster, so the proxy answers 503
		// with NC (and istioctl analyze reports IST0101).
		if findPort(svc, port) != nil {
			return name, true
		}
		return "", false
	}
	if _, ok := b.clusters[name]; !ok {
		return "", false
	}
	return name, true
}

func (b *builder) destinationService(d *networking.Destination, ns string, listenPort uint32) (*model.Service, uint32, bool) {
	if d == nil {
		return nil, 0, false
	}
	svc := b.byHost[b.resolveHost(d.Host, ns)]
	if svc == nil {
		return nil, 0, false
	}
	port := d.GetPort().GetNumber()
	switch {
	case port != 0:
	case len(svc.Ports) == 1:
		port = svc.Ports[0].Number
	default:
		port = listenPort
	}
	if port == 0 || findPort(svc, port) == nil {
		return nil, 0, false
	}
	return svc, port, true
}

// destinationHash is the route hash policy from the destination's
// DestinationRule consistentHash (subset and port-level applied).
func (b *builder) destinationHash(d *networking.Destination, ns string, listenPort uint32) []*routev3.RouteAction_HashPolicy {
	svc, port, ok := b.destinationService(d, ns, listenPort)
	if !ok {
		return nil
	}
	dr := b.destinationRule(svc.Hostname, svc.Namespace)
	var sub *networking.TrafficPolicy
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() == d.Subset {
			sub = ss.GetTrafficPolicy()
		}
	}
	return hashPolicy(effectivePolicy(dr.GetTrafficPolicy(), sub, port).lb)
}

// retryPolicy follows Istio (1.24 and later): no retries block → the
// mesh's defaultHttpRetryPolicy, else Istio's default policy, which retries
// connect failures, refused streams and resets but no status code (a 503 may
// come from an app that did the work; Istio stopped retrying it by default);
// attempts 0 → retries disabled; retryOn status codes become
// retriable_status_codes. A consistent-hash route does not avoid the previous
// host unless retryIgnorePreviousHosts asks it to.
func (b *builder) retryPolicy(in *networking.HTTPRetry, consistentHash bool) *routev3.RetryPolicy {
	if in == nil {
		in = b.mesh.GetDefaultHttpRetryPolicy()
	}
	if in != nil && in.Attempts <= 0 {
		return nil
	}
	p := &routev3.RetryPolicy{
		RetryOn:                       defaultRetryOn,
		NumRetries:                    u32(2),
		HostSelectionRetryMaxAttempts: 5,
	}
	if !consistentHash {
		p.RetryHostPredicate = previousHosts()
	}
	if in == nil {
		return p
	}
	p.NumRetries = u32(uint32(in.Attempts))
	if in.RetryOn != "" {
		var on []string
		var codes []uint32
		for _, t := range strings.Split(in.RetryOn, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if n, err := strconv.Atoi(t); err == nil && n >= 100 && n <= 599 {
				codes = append(codes, uint32(n))
				continue
			}
			on = append(on, t)
		}
		if len(codes) > 0 && !contains(on, "retriable-status-codes") {
			on = append(on, "retriable-status-codes")
		}
		p.RetryOn = strings.Join(on, ",")
		p.RetriableStatusCodes = codes
	}
	if in.PerTryTimeout != nil {
		p.PerTryTimeout = dur(in.PerTryTimeout.AsDuration())
	}
	if v := in.RetryIgnorePreviousHosts; v != nil {
		p.RetryHostPredicate = nil
		if v.Value {
			p.RetryHostPredicate = previousHosts()
		}
	}
	if in.Backoff != nil {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: dur(in.Backoff.AsDuration())}
	}
	// retryRemoteLocalities maps to Envoy's previous_priorities retry
	// priority, which weft-proxy does not implement yet; it is not emitted.
	return p
}

func previousHosts() []*routev3.RetryPolicy_RetryHostPredicate {
	return []*routev3.RetryPolicy_RetryHostPredicate{{
		Name:       "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: toAny(&previoushostsv3.PreviousHostsPredicate{})},
	}}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func redirectAction(in *networking.HTTPRedirect) *routev3.RedirectAction {
	r := &routev3.RedirectAction{ResponseCode: routev3.RedirectAction_MOVED_PERMANENTLY}
	if in.Uri != "" {
		r.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: in.Uri}
	} else if in.PrefixRewrite != "" {
		r.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: in.PrefixRewrite}
	}
	r.HostRedirect = in.Authority
	if in.Scheme != "" {
		r.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: in.Scheme}
	}
	if p := in.GetPort(); p != 0 {
		r.PortRedirect = p
	}
	switch in.RedirectCode {
	case 302:
		r.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		r.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		r.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		r.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	}
	return r
}

// headerOptions turns set (overwrite) and add (append) into Envoy options.
func headerOptions(ops *networking.Headers_HeaderOperations) []*corev3.HeaderValueOption {
	if ops == nil {
		return nil
	}
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(ops.Set) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.Set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(ops.Add) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.Add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func addHeaders(r *routev3.Route, h *networking.Headers) {
	if h == nil {
		return
	}
	r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, headerOptions(h.Request)...)
	r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, h.GetRequest().GetRemove()...)
	r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, headerOptions(h.Response)...)
	r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, h.GetResponse().GetRemove()...)
}

func setFilterConfig(r *routev3.Route, name string, cfg *anypb.Any) {
	if r.TypedPerFilterConfig == nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	r.TypedPerFilterConfig[name] = cfg
}

// faultConfig is Istio's fault → envoy.filters.http.fault HTTPFault.
func faultConfig(f *networking.HTTPFaultInjection) *anypb.Any {
	if f == nil || (f.Delay == nil && f.Abort == nil) {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil && d.GetFixedDelay() != nil {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: dur(d.GetFixedDelay().AsDuration())},
			Percentage:         faultPercent(d.Percentage, d.Percent),
		}
	}
	if a := f.Abort; a != nil {
		out.Abort = &faultv3.FaultAbort{Percentage: faultPercent(a.Percentage, 0)}
		switch e := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			out.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			out.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(e.GrpcStatus)}
		default:
			out.Abort = nil
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return toAny(out)
}

// faultPercent: an unset percentage means every request (Istio).
func faultPercent(p *networking.Percent, legacy int32) *typev3.FractionalPercent {
	switch {
	case p != nil:
		return percentFraction(p.Value)
	case legacy > 0:
		return intPercent(legacy)
	}
	return &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}
}

var grpcCodes = map[string]uint32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

func grpcCode(s string) uint32 {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= math.MaxInt32 {
		return uint32(n)
	}
	return grpcCodes[strings.ToUpper(s)]
}

// corsConfig is Istio's corsPolicy → envoy.filters.http.cors CorsPolicy.
func corsConfig(c *networking.CorsPolicy) *anypb.Any {
	if c == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.AllowMethods, ","),
		AllowHeaders:  strings.Join(c.AllowHeaders, ","),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ","),
		FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}},
	}
	for _, o := range c.AllowOrigin { // deprecated exact list
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, stringMatcher(&networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: o}}))
	}
	for _, o := range c.AllowOrigins {
		if m := stringMatcher(o); m != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, m)
		}
	}
	if c.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(int64(c.MaxAge.AsDuration().Seconds()), 10)
	}
	if c.AllowCredentials != nil {
		out.AllowCredentials = wrapperspb.Bool(c.AllowCredentials.Value)
	}
	switch c.UnmatchedPreflights {
	case networking.CorsPolicy_FORWARD:
		out.ForwardNotMatchingPreflights = wrapperspb.Bool(true)
	case networking.CorsPolicy_IGNORE:
		out.ForwardNotMatchingPreflights = wrapperspb.Bool(false)
	}
	return toAny(out)
}
