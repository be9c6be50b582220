package translate

import (
	"fmt"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/weftmesh/weft/internal/node"
)

// Request authentication (RequestAuthentication → envoy.filters.http.jwt_authn)
// in Istio's shape (pilot/pkg/security/authn): one provider per jwtRule,
// named origins-N in issuer order, each payload in metadata under
// "payload"; the requirement lets a request without a token through and
// rejects an invalid one. Keys are inlined: jwks as written, jwksUri from
// the control plane's fetcher (Snapshot.JWKS), or, when never fetched, a
// key set nobody can sign for, so tokens fail closed (istiod's fake JWKS).

const filterJWT = "envoy.filters.http.jwt_authn"

// unavailableJWKS is an RSA public key whose private half was discarded.
const unavailableJWKS = `{"keys":[{"use":"sig","kty":"RSA","kid":"weft-unavailable-jwks","alg":"RS256","n":"tpEdLp109qCFZfDJK6H8fqnGSTmTUGnHuUgAhGsl9kqQLARa3WVdEHCy9kINn-On4mxIj7qfey-3AJ2kZZ9y_QRKrkQiYRzRKwL9BtVgMH6ZQE_AYe9ang-zucZuTfBxlEs2sn-MHTYk5JtTFAD4aRt4Yw9maFrkVCkIfkOLVpraWlYGW3ujWMI3FdI1eiXmT-8mKrGRIQObsvr1WPyEZ24456ka1iaGPA-TZC-tx_7ptpBMvE9lPgPAR1L3Qc0UoNDXyO_Vyk9YTqWONeidgMDx3JrqAEMdJIQaf2trBeBdzPDAAzKk_Nnu6h45PcoOOMbDWCuRWZnqejvNDtA9pQ","e":"AQAB"}]}`

// RequestAuthentications returns the RequestAuthentications selecting the
// proxy, by the same rules as AuthorizationPolicy.
func RequestAuthentications(ras []*securityv1.RequestAuthentication, root string, m *node.Meta) []*securityv1.RequestAuthentication {
	if root == "" {
		root = "istio-system"
	}
	var out []*securityv1.RequestAuthentication
	for _, ra := range ras {
		if ra == nil {
			continue
		}
		ap := &securityv1.AuthorizationPolicy{ObjectMeta: ra.ObjectMeta}
		ap.Spec.Selector = ra.Spec.GetSelector()
		ap.Spec.TargetRef = ra.Spec.GetTargetRef()
		ap.Spec.TargetRefs = ra.Spec.GetTargetRefs()
		if policyApplies(ap, root, m) {
			out = append(out, ra)
		}
	}
	return out
}

// jwtFilter is the jwt_authn filter for the proxy, nil when no
// RequestAuthentication selects it (the filter then costs nothing).
func (b *builder) jwtFilter() *hcmv3.HttpFilter {
	var rules []*security.JWTRule
	for _, ra := range RequestAuthentications(b.snap.RequestAuthentications, b.rootNamespace(), b.p.Meta) {
		for _, r := range ra.Spec.GetJwtRules() {
			if r != nil { // an empty issuer (jwksUri only) accepts any issuer, as in Istio
				rules = append(rules, r)
			}
		}
	}
	if len(rules) == 0 {
		return nil
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].GetIssuer() < rules[j].GetIssuer() })
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, r := range rules {
		name := fmt.Sprintf("origins-%d", i)
		p := &jwtv3.JwtProvider{
			Issuer:               r.GetIssuer(),
			Audiences:            r.GetAudiences(),
			Forward:              r.GetForwardOriginalToken(),
			ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
			PayloadInMetadata:    jwtPayload,
			NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{
				SpaceDelimitedClaims: []string{"permission", "scope"},
			},
			// Gateways re-match routes on verified claims.
			ClearRouteCache: b.p.Meta.Type == node.Router,
			FromParams:      r.GetFromParams(),
			FromCookies:     r.GetFromCookies(),
			JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: b.jwks(r)}}},
		}
		for _, c := range r.GetOutputClaimToHeaders() {
			p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
		}
		for _, h := range r.GetFromHeaders() {
			p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
		}
		cfg.Providers[name] = p
		provider := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		inner = append(inner, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
			Requirements: []*jwtv3.JwtRequirement{provider, {RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}},
		}}})
		outer = append(outer, provider)
	}
	req := inner[0]
	if len(inner) > 1 {
		outer = append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner}}})
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: outer}}}
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return &hcmv3.HttpFilter{Name: filterJWT, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

// jwks is the key set to inline for a rule.
func (b *builder) jwks(r *security.JWTRule) string {
	if r.GetJwks() != "" {
		return r.GetJwks()
	}
	if k, ok := b.snap.JWKS[r.GetJwksUri()]; ok && r.GetJwksUri() != "" {
		return k
	}
	return unavailableJWKS
}

// claimPrefix marks a VirtualService header match on a verified JWT claim
// (Istio: gateways only, with a RequestAuthentication).
const claimPrefix = "@request.auth.claims."

// claimMatcher turns a header match named @request.auth.claims.a.b into
// Istio's route match on the jwt_authn payload (claim a.b equal to, or a
// list containing, the value); nil for other headers.
func claimMatcher(name string, sm *networking.StringMatch, invert bool) *matcherv3.MetadataMatcher {
	if !strings.HasPrefix(name, claimPrefix) {
		return nil
	}
	claims := strings.Split(strings.TrimPrefix(name, claimPrefix), ".")
	var v *matcherv3.ValueMatcher
	if m := stringMatcher(sm); m != nil {
		one := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
		v = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: []*matcherv3.ValueMatcher{
			{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: one}}}},
			one,
		}}}}
	} else {
		v = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
	}
	dm := metadataMatcher(jwtFilter, claimPath(claims...), v)
	dm.Invert = invert
	return dm
}
