package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	security "istio.io/api/security/v1beta1"
)

// This file turns one AuthorizationPolicy rule into an Envoy RBAC policy
// with Istio's shapes (pilot/pkg/security/authz/model): every `from` is one
// principal and every `to` one permission, each an AND of the rule's
// fields (values OR'ed, notValues as NOT(OR)), with the `when` conditions
// appended to every one of them.

// jwtFilter and jwtPayload locate the verified JWT payload in dynamic
// metadata (Envoy's jwt_authn payload_in_metadata, as Istio sets it).
const (
	jwtFilter  = "envoy.filters.http.jwt_authn"
	jwtPayload = "payload"
)

// errHTTPOnly marks a field a TCP filter chain cannot evaluate.
var errHTTPOnly = errors.New("HTTP only")

// term is one field of a rule: a key and its values and notValues.
type term struct {
	key       string
	values    []string
	notValues []string
}

// ruleTerms are the fields of one from/to, in Istio's order.
type ruleTerms []term

func (ts *ruleTerms) add(key string, values, notValues []string) {
	if len(values) == 0 && len(notValues) == 0 {
		return
	}
	*ts = append(*ts, term{key, values, notValues})
}

// when keys (Istio 1.31's "Authorization Policy Conditions").
const (
	keySrcIP        = "source.ip"
	keyRemoteIP     = "remote.ip"
	keySrcNamespace = "source.namespace"
	keySrcSA        = "source.serviceAccount"
	keySrcTD        = "source.trustDomain"
	keySrcPrincipal = "source.principal"
	keyReqPrincipal = "request.auth.principal"
	keyReqAud       = "request.auth.audiences"
	keyReqPresenter = "request.auth.presenter"
	keyReqClaims    = "request.auth.claims"
	keyReqHeaders   = "request.headers"
	keyDstIP        = "destination.ip"
	keyDstPort      = "destination.port"
	keySNI          = "connection.sni"
	keyEnvoyFilter  = "experimental.envoy.filters."
	keyHost         = ":authority"
	keyMethod       = ":method"
	keyPath         = "path-matcher"
)

// isPermissionKey says whether a when key belongs to the permission side.
func isPermissionKey(k string) bool {
	return k == keyDstIP || k == keyDstPort || k == keySNI || strings.HasPrefix(k, keyEnvoyFilter)
}

// knownWhenKey reports whether k is a condition key Istio supports.
func knownWhenKey(k string) bool {
	switch k {
	case keySrcIP, keyRemoteIP, keySrcNamespace, keySrcSA, keySrcTD, keySrcPrincipal, keyReqPrincipal,
		keyReqAud, keyReqPresenter, keyDstIP, keyDstPort, keySNI:
		return true
	}
	return strings.HasPrefix(k, keyReqHeaders+"[") || strings.HasPrefix(k, keyReqClaims+"[") || strings.HasPrefix(k, keyEnvoyFilter)
}

// rbacAction maps an AuthorizationPolicy action to the RBAC engine's.
type ruleGen struct {
	ns     string // the policy's namespace (serviceAccounts without one)
	forTCP bool
	deny   bool // DENY/AUDIT/CUSTOM: errors drop a field (wider); ALLOW: the rule (narrower)
	tds    trustBundle
}

// policy builds the RBAC policy for rule r; nil, err when the rule is
// dropped (an ALLOW rule with a field the chain cannot evaluate).
func (g ruleGen) policy(r *security.Rule) (*rbacv3.Policy, error) {
	var basePerm, basePrin ruleTerms
	for _, w := range r.GetWhen() {
		if w == nil {
			continue
		}
		if !knownWhenKey(w.GetKey()) {
			return nil, fmt.Errorf("unknown attribute %s", w.GetKey())
		}
		if isPermissionKey(w.GetKey()) {
			basePerm.add(w.GetKey(), w.GetValues(), w.GetNotValues())
		} else {
			basePrin.add(w.GetKey(), w.GetValues(), w.GetNotValues())
		}
	}
	out := &rbacv3.Policy{}
	for _, f := range r.GetFrom() {
		var ts ruleTerms
		if s := f.GetSource(); s != nil {
			ts.add(keySrcPrincipal, s.GetPrincipals(), s.GetNotPrincipals())
			ts.add(keyReqPrincipal, s.GetRequestPrincipals(), s.GetNotRequestPrincipals())
			ts.add(keySrcSA, s.GetServiceAccounts(), s.GetNotServiceAccounts())
			ts.add(keySrcTD, s.GetTrustDomains(), s.GetNotTrustDomains())
			ts.add(keySrcNamespace, s.GetNamespaces(), s.GetNotNamespaces())
			ts.add(keyRemoteIP, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())
			ts.add(keySrcIP, s.GetIpBlocks(), s.GetNotIpBlocks())
		}
		p, err := g.principal(append(ts, basePrin...))
		if err != nil {
			return nil, err
		}
		out.Principals = append(out.Principals, p)
	}
	if len(r.GetFrom()) == 0 {
		p, err := g.principal(basePrin)
		if err != nil {
			return nil, err
		}
		out.Principals = append(out.Principals, p)
	}
	for _, t := range r.GetTo() {
		var ts ruleTerms
		if o := t.GetOperation(); o != nil {
			ts.add(keyHost, o.GetHosts(), o.GetNotHosts())
			ts.add(keyMethod, o.GetMethods(), o.GetNotMethods())
			ts.add(keyPath, o.GetPaths(), o.GetNotPaths())
			ts.add(keyDstPort, o.GetPorts(), o.GetNotPorts())
		}
		p, err := g.permission(append(ts, basePerm...))
		if err != nil {
			return nil, err
		}
		out.Permissions = append(out.Permissions, p)
	}
	if len(r.GetTo()) == 0 {
		p, err := g.permission(basePerm)
		if err != nil {
			return nil, err
		}
		out.Permissions = append(out.Permissions, p)
	}
	return out, nil
}

// keep applies Istio's error rule: an ALLOW policy loses the whole rule,
// any other action just the failing value.
func (g ruleGen) keep(err error) error {
	if g.deny {
		return nil
	}
	return err
}

func (g ruleGen) permission(ts ruleTerms) (*rbacv3.Permission, error) {
	var and []*rbacv3.Permission
	for _, t := range ts {
		if strings.HasPrefix(t.key, keyEnvoyFilter) {
			// Extended in Istio: one metadata matcher ORs all values.
			if len(t.values) > 0 {
				if m, err := envoyFilterMatcher(t.key, t.values); err == nil {
					and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{Metadata: m}})
				} else if err := g.keep(err); err != nil {
					return nil, err
				}
			}
			if len(t.notValues) > 0 {
				if m, err := envoyFilterMatcher(t.key, t.notValues); err == nil {
					and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{Metadata: m}}}})
				} else if err := g.keep(err); err != nil {
					return nil, err
				}
			}
			continue
		}
		yes, err := convertValues(g, t.key, t.values, g.permValue)
		if err != nil {
			return nil, err
		}
		no, err := convertValues(g, t.key, t.notValues, g.permValue)
		if err != nil {
			return nil, err
		}
		// request.auth-style keys are "extended" in Istio: their values form
		// one matcher; the others OR single-value matchers. Both end up
		// as one OR here.
		if len(yes) > 0 {
			and = append(and, permOr(yes))
		}
		if len(no) > 0 {
			and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: permOr(no)}})
		}
	}
	if len(and) == 0 {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}})
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}, nil
}

// convertValues turns each value of key into a matcher; a value that
// cannot be converted is dropped or fails the rule, as g.keep decides.
func convertValues[T any](g ruleGen, key string, values []string, conv func(key, value string) (T, error)) ([]T, error) {
	var out []T
	for _, v := range values {
		m, err := conv(key, v)
		if err != nil {
			if err := g.keep(err); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func permOr(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func prinOr(ps []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func (g ruleGen) principal(ts ruleTerms) (*rbacv3.Principal, error) {
	var and []*rbacv3.Principal
	for _, t := range ts {
		t = g.tds.migrate(t)
		if extendedKey(t.key) {
			// Istio builds one matcher from all values of these keys.
			if len(t.values) > 0 {
				p, err := g.prinExtended(t.key, t.values)
				if err != nil {
					if err := g.keep(err); err != nil {
						return nil, err
					}
				} else {
					and = append(and, p)
				}
			}
			if len(t.notValues) > 0 {
				p, err := g.prinExtended(t.key, t.notValues)
				if err != nil {
					if err := g.keep(err); err != nil {
						return nil, err
					}
				} else {
					and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}})
				}
			}
			continue
		}
		yes, err := convertValues(g, t.key, t.values, g.prinValue)
		if err != nil {
			return nil, err
		}
		no, err := convertValues(g, t.key, t.notValues, g.prinValue)
		if err != nil {
			return nil, err
		}
		if len(yes) > 0 {
			and = append(and, prinOr(yes))
		}
		if len(no) > 0 {
			and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: prinOr(no)}})
		}
	}
	if len(and) == 0 {
		and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: and}}}, nil
}

func extendedKey(k string) bool {
	return k == keyReqPrincipal || k == keyReqAud || k == keyReqPresenter || strings.HasPrefix(k, keyReqClaims)
}

func (g ruleGen) permValue(key, v string) (*rbacv3.Permission, error) {
	switch {
	case key == keyDstIP:
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: c}}, nil
	case key == keyDstPort:
		p, err := strconv.ParseUint(v, 10, 32)
		if err != nil || p > 65535 {
			return nil, fmt.Errorf("invalid port %q", v)
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(p)}}, nil
	case key == keySNI:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: strMatch(v, "")}}, nil
	}
	if g.forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	switch key {
	case keyHost:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatch(keyHost, v, true)}}, nil
	case keyMethod:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatch(keyMethod, v, false)}}, nil
	case keyPath:
		if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
				Name:        "uri-template",
				TypedConfig: toAny(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: v}),
			}}}, nil
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: strMatch(v, "")}}}}, nil
	}
	return nil, fmt.Errorf("%s is not a permission", key)
}

func (g ruleGen) prinValue(key, v string) (*rbacv3.Principal, error) {
	switch {
	case key == keySrcIP, key == keyRemoteIP:
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		if key == keySrcIP {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, nil
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, nil
	case key == keySrcNamespace:
		parts := strings.Split(v, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		return authenticated(regexMatch(".*/ns/" + strings.Join(parts, ".*") + "/.*")), nil
	case key == keySrcSA:
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			ns, sa = g.ns, v
		}
		return authenticated(regexMatch(fmt.Sprintf("spiffe://.+/ns/%s/(.+/|)sa/%s(/.+)?", regexp.QuoteMeta(ns), regexp.QuoteMeta(sa)))), nil
	case key == keySrcTD:
		switch {
		case v == "*":
			return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://"}}), nil
		case !strings.Contains(v, "*"):
			return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + v + "/"}}), nil
		default:
			a, b, _ := strings.Cut(v, "*")
			return authenticated(regexMatch("spiffe://" + regexp.QuoteMeta(a) + "[^/]*" + regexp.QuoteMeta(b) + "/.*")), nil
		}
	case key == keySrcPrincipal:
		return authenticated(strMatch(v, "spiffe://")), nil
	case strings.HasPrefix(key, keyReqHeaders):
		if g.forTCP {
			return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
		}
		name, ok := inBrackets(strings.TrimPrefix(key, keyReqHeaders))
		if !ok {
			return nil, fmt.Errorf("expecting format [<NAME>], found %s", key)
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatch(name, v, false)}}, nil
	}
	return nil, fmt.Errorf("%s is not a principal", key)
}

// prinExtended builds the request.auth.* matchers from all values at once.
func (g ruleGen) prinExtended(key string, values []string) (*rbacv3.Principal, error) {
	if g.forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	switch {
	case key == keyReqPrincipal:
		var or []*rbacv3.Principal
		for _, v := range values {
			iss, sub := requestPrincipalMatchers(v)
			or = append(or, &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
				metaPrincipal(claimPath("iss"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: iss}}),
				metaPrincipal(claimPath("sub"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: sub}}),
			}}}})
		}
		if len(or) == 1 {
			return or[0], nil
		}
		return prinOr(or), nil
	case key == keyReqAud:
		return metaPrincipal(claimPath("aud"), claimValue(values)), nil
	case key == keyReqPresenter:
		return metaPrincipal(claimPath("azp"), claimValue(values)), nil
	default: // request.auth.claims[a][b]
		claims, err := nestedBrackets(strings.TrimPrefix(key, keyReqClaims))
		if err != nil {
			return nil, err
		}
		return metaPrincipal(claimPath(claims...), claimValue(values)), nil
	}
}

// requestPrincipalMatchers splits "iss/sub" (at the last /, issuers are
// URLs) with Istio's wildcard rules.
func requestPrincipalMatchers(v string) (iss, sub *matcherv3.StringMatcher) {
	anyM := regexMatch(".+")
	i := strings.LastIndex(v, "/")
	found := i >= 0
	is, su := v, ""
	if found {
		is, su = v[:i], v[i+1:]
	}
	switch {
	case v == "*":
		return anyM, anyM
	case strings.HasPrefix(v, "*"):
		if !found {
			return anyM, suffixMatch(strings.TrimPrefix(v, "*"))
		}
		if is == "*" {
			return anyM, exactMatch(su)
		}
		return suffixMatch(strings.TrimPrefix(is, "*")), exactMatch(su)
	case strings.HasSuffix(v, "*"):
		if !found {
			return prefixMatch(strings.TrimSuffix(v, "*")), anyM
		}
		if su == "*" {
			return exactMatch(is), anyM
		}
		return exactMatch(is), prefixMatch(strings.TrimSuffix(su, "*"))
	}
	return exactMatch(is), exactMatch(su)
}

func claimPath(keys ...string) []string { return append([]string{jwtPayload}, keys...) }

// claimValue matches a claim equal to one of values, or a list claim
// containing one (Istio's extended JWT matcher).
func claimValue(values []string) *matcherv3.ValueMatcher {
	var vs []*matcherv3.ValueMatcher
	for _, v := range values {
		vs = append(vs, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: strMatch(v, "")}})
	}
	one := vs[0]
	if len(vs) > 1 {
		one = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: vs}}}
	}
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: []*matcherv3.ValueMatcher{
		{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: one}}}},
		one,
	}}}}
}

func metaPrincipal(path []string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: metadataMatcher(jwtFilter, path, v)}}
}

func metadataMatcher(filter string, path []string, v *matcherv3.ValueMatcher) *matcherv3.MetadataMatcher {
	m := &matcherv3.MetadataMatcher{Filter: filter, Value: v}
	for _, k := range path {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return m
}

// envoyFilterMatcher is experimental.envoy.filters.<filter>[key]: the
// metadata value equals one of values, or with a value "[v]" is a list
// containing v.
func envoyFilterMatcher(key string, values []string) (*matcherv3.MetadataMatcher, error) {
	parts := strings.SplitN(strings.TrimSuffix(strings.TrimPrefix(key, "experimental."), "]"), "[", 2)
	if len(parts) != 2 || parts[1] == "" {
		return nil, fmt.Errorf("invalid key: %v", key)
	}
	var vs []*matcherv3.ValueMatcher
	for _, v := range values {
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			inner := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: strMatch(strings.Trim(v, "[]"), "")}}
			vs = append(vs, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{
				ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: inner}}}})
			continue
		}
		vs = append(vs, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: strMatch(v, "")}})
	}
	one := vs[0]
	if len(vs) > 1 {
		one = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: vs}}}
	}
	return metadataMatcher(parts[0], []string{parts[1]}, one), nil
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

// strMatch is Istio's value matcher: "*" any non-empty value, "*x" a
// suffix, "x*" a prefix, else exact; prefix is prepended (spiffe://).
func strMatch(v, prefix string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatch(".+")
	case strings.HasPrefix(v, "*"):
		if prefix == "" {
			return suffixMatch(v[1:])
		}
		return regexMatch(prefix + ".*" + regexp.QuoteMeta(v[1:]))
	case strings.HasSuffix(v, "*"):
		return prefixMatch(prefix + strings.TrimSuffix(v, "*"))
	}
	return exactMatch(prefix + v)
}

// headerMatch is Istio's header matcher ("*" presence, wildcards as
// prefix/suffix); hosts compare without case.
func headerMatch(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	h := &routev3.HeaderMatcher{Name: name}
	var m *matcherv3.StringMatcher
	switch {
	case v == "*":
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		return h
	case strings.HasPrefix(v, "*"):
		m = suffixMatch(v[1:])
	case strings.HasSuffix(v, "*"):
		m = prefixMatch(v[:len(v)-1])
	default:
		m = exactMatch(v)
	}
	m.IgnoreCase = ignoreCase
	h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: m}
	return h
}

func exactMatch(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}
func prefixMatch(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}
func suffixMatch(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}}
}
func regexMatch(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func cidrRange(v string) (*corev3.CidrRange, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: u32(uint32(p.Bits()))}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, fmt.Errorf("invalid IP address or CIDR %q", v)
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: u32(uint32(a.BitLen()))}, nil
}

func inBrackets(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return "", false
	}
	return s[1 : len(s)-1], true
}

// nestedBrackets parses "[a][b]" into a, b ("[a.b]" stays one claim name,
// as Istio reads it).
func nestedBrackets(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] != '[' {
			return nil, fmt.Errorf("expecting format [<NAME>], found %s", s)
		}
		end := strings.IndexByte(s, ']')
		if end < 0 || strings.IndexByte(s[1:end], '[') >= 0 {
			return nil, fmt.Errorf("expecting format [<NAME>], found %s", s)
		}
		out = append(out, s[1:end])
		s = s[end+1:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("claim name missing")
	}
	return out, nil
}
