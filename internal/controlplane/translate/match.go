package translate

import (
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// routeMatch translates an Istio HTTPMatchRequest (nil = match all).
func routeMatch(m *networking.HTTPMatchRequest) *routev3.RouteMatch {
	out := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return out
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
	}
	if m.IgnoreUriCase {
		out.CaseSensitive = wrapperspb.Bool(false)
	}
	// Istio matches scheme, method and authority as pseudo-headers.
	for _, h := range []struct {
		name string
		sm   *networking.StringMatch
	}{{":scheme", m.Scheme}, {":method", m.Method}, {":authority", m.Authority}} {
		if h.sm != nil {
			out.Headers = append(out.Headers, headerMatcher(h.name, h.sm, false))
		}
	}
	for _, k := range sortedKeys(m.Headers) {
		if dm := claimMatcher(k, m.Headers[k], false); dm != nil {
			out.DynamicMetadata = append(out.DynamicMetadata, dm)
			continue
		}
		out.Headers = append(out.Headers, headerMatcher(k, m.Headers[k], false))
	}
	for _, k := range sortedKeys(m.WithoutHeaders) {
		if dm := claimMatcher(k, m.WithoutHeaders[k], true); dm != nil {
			out.DynamicMetadata = append(out.DynamicMetadata, dm)
			continue
		}
		out.Headers = append(out.Headers, headerMatcher(k, m.WithoutHeaders[k], true))
	}
	for _, k := range sortedKeys(m.QueryParams) {
		q := &routev3.QueryParameterMatcher{Name: k}
		if sm := stringMatcher(m.QueryParams[k]); sm != nil {
			q.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			q.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		out.QueryParameters = append(out.QueryParameters, q)
	}
	return out
}

// headerMatcher: an empty StringMatch means "present", as in Istio.
func headerMatcher(name string, sm *networking.StringMatch, invert bool) *routev3.HeaderMatcher {
	h := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if m := stringMatcher(sm); m != nil {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: m}
	} else {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return h
}

func stringMatcher(sm *networking.StringMatch) *matcherv3.StringMatcher {
	switch v := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v.Regex}}}
	}
	return nil
}

// mergeMatch combines a root VirtualService match with a delegate's, as
// Istio does: the delegate's conditions are added to the root's; where both
// set one field the delegate's must be at least as narrow, else the pair
// can never match and is dropped (ok=false).
func mergeMatch(root, d *networking.HTTPMatchRequest) (*networking.HTTPMatchRequest, bool) {
	if root == nil {
		return d, true
	}
	if d == nil {
		return root, true
	}
	out := d.DeepCopy()
	if out.Uri == nil {
		out.Uri = root.Uri
	} else if root.Uri != nil && !narrower(out.Uri, root.Uri) {
		return nil, false
	}
	if out.Scheme == nil {
		out.Scheme = root.Scheme
	}
	if out.Method == nil {
		out.Method = root.Method
	}
	if out.Authority == nil {
		out.Authority = root.Authority
	}
	if out.Port == 0 {
		out.Port = root.Port
	}
	out.Headers = mergeMaps(root.Headers, out.Headers)
	out.WithoutHeaders = mergeMaps(root.WithoutHeaders, out.WithoutHeaders)
	out.QueryParams = mergeMaps(root.QueryParams, out.QueryParams)
	if len(out.SourceLabels) == 0 {
		out.SourceLabels = root.SourceLabels
	}
	if out.SourceNamespace == "" {
		out.SourceNamespace = root.SourceNamespace
	}
	if len(out.Gateways) == 0 {
		out.Gateways = root.Gateways
	}
	if root.IgnoreUriCase {
		out.IgnoreUriCase = true
	}
	if out.Name == "" {
		out.Name = root.Name
	}
	return out, true
}

// narrower reports whether delegate match d only matches paths root matches.
func narrower(d, root *networking.StringMatch) bool {
	switch r := root.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		switch v := d.GetMatchType().(type) {
		case *networking.StringMatch_Prefix:
			return strings.HasPrefix(v.Prefix, r.Prefix)
		case *networking.StringMatch_Exact:
			return strings.HasPrefix(v.Exact, r.Prefix)
		}
	case *networking.StringMatch_Exact:
		if v, ok := d.GetMatchType().(*networking.StringMatch_Exact); ok {
			return v.Exact == r.Exact
		}
	case *networking.StringMatch_Regex:
		if v, ok := d.GetMatchType().(*networking.StringMatch_Regex); ok {
			return v.Regex == r.Regex
		}
	}
	return false
}

func mergeMaps[V any](root, d map[string]V) map[string]V {
	if len(root) == 0 {
		return d
	}
	out := map[string]V{}
	keys := sortedKeys(root)
	sort.Strings(keys)
	for _, k := range keys {
		out[k] = root[k]
	}
	for k, v := range d {
		out[k] = v
	}
	return out
}
