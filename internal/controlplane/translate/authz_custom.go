package translate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	extauthznetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// CUSTOM policies (Istio's builder/extauthz.go): per provider, an RBAC
// filter whose shadow rules mark matching requests in dynamic metadata
// (policy names prefixed istio-ext-authz-<provider>-), then the ext_authz
// filter enabled by that mark. A provider that is missing or invalid turns
// its policies into DENY rules (fail closed), as Istio does.
//
// On TCP chains a gRPC provider gets the network pair (network RBAC
// shadow rules, envoy.filters.network.ext_authz); HTTP providers are
// ignored there, as in Istio. Difference, on purpose: dry-run CUSTOM
// policies are not translated (Istio still calls the service for them).

const (
	filterExtAuthz      = "envoy.filters.http.ext_authz"
	filterNetExtAuthz   = "envoy.filters.network.ext_authz"
	extAuthzMatchPrefix = "istio-ext-authz"
	extAuthzStatPrefix  = "istio_ext_authz_"
	badCustomSuffix     = "-deny-due-to-bad-CUSTOM-action"
)

// extProvider is a resolved MeshConfig extension provider.
type extProvider struct {
	http    *extauthzv3.ExtAuthz
	grpc    bool
	err     error
	cluster string
}

func (b *builder) extProvider(name string) extProvider {
	for _, p := range b.mesh.GetExtensionProviders() {
		if p.GetName() != name {
			continue
		}
		switch {
		case p.GetEnvoyExtAuthzHttp() != nil:
			return b.extAuthzHTTP(p.GetEnvoyExtAuthzHttp())
		case p.GetEnvoyExtAuthzGrpc() != nil:
			return b.extAuthzGRPC(p.GetEnvoyExtAuthzGrpc())
		}
		return extProvider{err: fmt.Errorf("provider %q is not an ext_authz provider", name)}
	}
	return extProvider{err: fmt.Errorf("no extension provider %q in MeshConfig", name)}
}

// lookupService resolves "host" or "ns/host" to the FQDN and its outbound
// cluster for port.
func (b *builder) lookupService(service string, port uint32) (string, string, error) {
	if port == 0 || port > 65535 {
		return "", "", fmt.Errorf("port must be in the range [1, 65535], found: %d", port)
	}
	host := service
	if i := strings.IndexByte(service, '/'); i >= 0 {
		host = service[i+1:]
	}
	for _, s := range b.snap.Services {
		if s != nil && s.Hostname == host {
			return host, "outbound|" + itoa(port) + "||" + host, nil
		}
	}
	return "", "", fmt.Errorf("could not find service %s in the registry", service)
}

func statusOnError(s string) (*typev3.HttpStatus, error) {
	if s == "" {
		return nil, nil
	}
	c, err := strconv.Atoi(s)
	if err != nil || typev3.StatusCode_name[int32(c)] == "" {
		return nil, fmt.Errorf("unsupported statusOnError %q", s)
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(c)}, nil
}

func timeoutOrDefault(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return &durationpb.Duration{Seconds: 600} // Istio's default
	}
	return d
}

func headerList(hs []string) *matcherv3.ListStringMatcher {
	if len(hs) == 0 {
		return nil
	}
	l := &matcherv3.ListStringMatcher{}
	for _, h := range hs {
		m := &matcherv3.StringMatcher{IgnoreCase: true}
		switch {
		case strings.HasPrefix(h, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: h[1:]}
		case strings.HasSuffix(h, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(h, "*")}
		default:
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: h}
		}
		l.Patterns = append(l.Patterns, m)
	}
	return l
}

func (b *builder) extAuthzHTTP(c *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider) extProvider {
	host, cluster, err := b.lookupService(c.GetService(), c.GetPort())
	if err != nil {
		return extProvider{err: err}
	}
	st, err := statusOnError(c.GetStatusOnError())
	if err != nil {
		return extProvider{err: err}
	}
	if c.GetPathPrefix() != "" && !strings.HasPrefix(c.GetPathPrefix(), "/") {
		return extProvider{err: fmt.Errorf("pathPrefix must begin with /, found %q", c.GetPathPrefix())}
	}
	svc := &extauthzv3.HttpService{PathPrefix: c.GetPathPrefix(), ServerUri: &corev3.HttpUri{
		Uri: "http://" + host, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: timeoutOrDefault(c.GetTimeout())}}
	if add := c.GetIncludeAdditionalHeadersInCheck(); len(add) > 0 {
		keys := make([]string, 0, len(add))
		for k := range add {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		svc.AuthorizationRequest = &extauthzv3.AuthorizationRequest{}
		for _, k := range keys {
			svc.AuthorizationRequest.HeadersToAdd = append(svc.AuthorizationRequest.HeadersToAdd, &corev3.HeaderValue{Key: k, Value: add[k]})
		}
	}
	if len(c.GetHeadersToUpstreamOnAllow()) > 0 || len(c.GetHeadersToDownstreamOnDeny()) > 0 || len(c.GetHeadersToDownstreamOnAllow()) > 0 {
		svc.AuthorizationResponse = &extauthzv3.AuthorizationResponse{
			AllowedUpstreamHeaders:        headerList(c.GetHeadersToUpstreamOnAllow()),
			AllowedClientHeaders:          headerList(c.GetHeadersToDownstreamOnDeny()),
			AllowedClientHeadersOnSuccess: headerList(c.GetHeadersToDownstreamOnAllow()),
		}
	}
	cfg := &extauthzv3.ExtAuthz{StatusOnError: st, FailureModeAllow: c.GetFailOpen(), TransportApiVersion: corev3.ApiVersion_V3,
		Services: &extauthzv3.ExtAuthz_HttpService{HttpService: svc}}
	allowed := headerList(c.GetIncludeRequestHeadersInCheck())
	if allowed == nil {
		allowed = headerList(c.GetIncludeHeadersInCheck())
	}
	cfg.AllowedHeaders = allowed
	return extProvider{http: cfg, cluster: cluster}
}

func (b *builder) extAuthzGRPC(c *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider) extProvider {
	host, cluster, err := b.lookupService(c.GetService(), c.GetPort())
	if err != nil {
		return extProvider{err: err}
	}
	st, err := statusOnError(c.GetStatusOnError())
	if err != nil {
		return extProvider{err: err}
	}
	cfg := &extauthzv3.ExtAuthz{StatusOnError: st, FailureModeAllow: c.GetFailOpen(), TransportApiVersion: corev3.ApiVersion_V3,
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}},
			Timeout:         timeoutOrDefault(c.GetTimeout()),
		}}}
	return extProvider{http: cfg, grpc: true, cluster: cluster}
}

// customByProvider groups enforced CUSTOM policies by provider name.
func customByProvider(pols []*securityv1.AuthorizationPolicy) (map[string][]*securityv1.AuthorizationPolicy, []string) {
	by := map[string][]*securityv1.AuthorizationPolicy{}
	for _, ap := range pols {
		if dryRun(ap) {
			continue
		}
		n := ap.Spec.GetProvider().GetName()
		by[n] = append(by[n], ap)
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	return by, names
}

// badCustom turns a provider's rules into DENY rules (fail closed).
func badCustom(r *rbacv3.RBAC) *rbacv3.RBAC {
	out := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
	for k, v := range r.GetPolicies() {
		out.Policies[k+badCustomSuffix] = v
	}
	return out
}

func (b *builder) customHTTPFilters(pols []*securityv1.AuthorizationPolicy) []*hcmv3.HttpFilter {
	by, names := customByProvider(pols)
	var out []*hcmv3.HttpFilter
	for _, n := range names {
		rules, _ := rbacRules(by[n], rbacv3.RBAC_DENY, false, extAuthzMatchPrefix+"-"+n+"-", b.trustBundle())
		if rules == nil {
			continue
		}
		p := b.extProvider(n)
		if p.err != nil {
			out = append(out, &hcmv3.HttpFilter{Name: filterRBAC, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&rbachttpv3.RBAC{Rules: badCustom(rules)})}})
			continue
		}
		p.http.FilterEnabledMetadata = enabledBy(filterRBAC, n)
		out = append(out,
			&hcmv3.HttpFilter{Name: filterRBAC, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&rbachttpv3.RBAC{ShadowRules: rules, ShadowRulesStatPrefix: extAuthzStatPrefix})}},
			&hcmv3.HttpFilter{Name: filterExtAuthz, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(p.http)}})
	}
	return out
}

func (b *builder) customNetworkFilters(pols []*securityv1.AuthorizationPolicy) []*listenerv3.Filter {
	by, names := customByProvider(pols)
	var out []*listenerv3.Filter
	for _, n := range names {
		p := b.extProvider(n)
		if p.err == nil && !p.grpc {
			continue // HTTP providers do not apply to TCP (Istio)
		}
		rules, _ := rbacRules(by[n], rbacv3.RBAC_DENY, true, extAuthzMatchPrefix+"-"+n+"-", b.trustBundle())
		if rules == nil {
			continue
		}
		if p.err != nil {
			out = append(out, &listenerv3.Filter{Name: filterNetRBAC, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(
				&rbactcpv3.RBAC{Rules: badCustom(rules), StatPrefix: "tcp."})}})
			continue
		}
		out = append(out,
			&listenerv3.Filter{Name: filterNetRBAC, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(
				&rbactcpv3.RBAC{ShadowRules: rules, StatPrefix: "tcp.", ShadowRulesStatPrefix: extAuthzStatPrefix})}},
			&listenerv3.Filter{Name: filterNetExtAuthz, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(
				&extauthznetv3.ExtAuthz{StatPrefix: "tcp.", GrpcService: p.http.GetGrpcService(), FailureModeAllow: p.http.GetFailureModeAllow(),
					TransportApiVersion: corev3.ApiVersion_V3, FilterEnabledMetadata: enabledBy(filterNetRBAC, n)})}})
	}
	return out
}

// enabledBy is Istio's filter_enabled_metadata for a provider's marks.
func enabledBy(filter, provider string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{Filter: filter,
		Path: []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: extAuthzStatPrefix + "shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: extAuthzMatchPrefix + "-" + provider}}}}}
}
