package route

import (
	"net/http"
	"net/url"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// FuzzMatch: any authority, path and query must match without panicking,
// and a Match result must agree with Select.
func FuzzMatch(f *testing.F) {
	tb, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		{Name: "a", Domains: []string{"a.example", "*.b.example", "c.*"}, Routes: []*routev3.Route{
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}, CaseSensitive: wrapperspb.Bool(false)},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "/x"}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/r/[a-z]+"}},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}},
				Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/"}}}},
		}},
		{Name: "star", Domains: []string{"*"}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("a.example", "/api/v1", "q=1")
	f.Add("x.b.example:80", "/r/abc", "q")
	f.Add("C.EXAMPLE", "/API", "%zz=%")
	f.Fuzz(func(t *testing.T, host, path, query string) {
		r := &http.Request{Method: "GET", Host: host, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}
		v, rt := tb.Match(r)
		if v != tb.Select(host) {
			t.Fatal("Match and Select disagree")
		}
		if rt != nil {
			rt.RewritePath(path)
			if rt.Redirect != nil {
				rt.Location(r, false)
			}
		}
	})
}
