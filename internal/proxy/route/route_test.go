package route

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func toCluster(name string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}
}

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func vh(name string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains,
		Routes: []*routev3.Route{{Name: name, Match: prefix("/"), Action: toCluster(name)}}}
}

func TestSelectVirtualHost(t *testing.T) {
	tb, err := Compile(&routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{
		vh("exact", "api.foo.com", "api.foo.com:8080"),
		vh("suffix-long", "*.api.foo.com"),
		vh("suffix", "*.foo.com"),
		vh("suffix-dash", "*-bar.foo.com"),
		vh("prefix", "api.*"),
		vh("prefix-long", "api.foo.*"),
		vh("star", "*"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"api.foo.com":      "exact",
		"API.Foo.com":      "exact",
		"api.foo.com:8080": "exact",
		"api.foo.com:9090": "prefix-long", // no exact port-qualified domain; "api.foo.*" covers it
		"x.api.foo.com":    "suffix-long",
		"x.foo.com":        "suffix",
		"x-bar.foo.com":    "suffix-dash", // longer suffix wins
		"api.foo.org":      "prefix-long",
		"api.bar":          "prefix",
		"other":            "star",
		".foo.com":         "star", // the wildcard must cover at least one character
	} {
		v := tb.Select(host)
		if v == nil || v.Name != want {
			t.Errorf("Select(%q) = %v, want %s", host, v, want)
		}
	}
}

func TestNoStar(t *testing.T) {
	tb, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh("a", "a")}})
	if err != nil {
		t.Fatal(err)
	}
	if v := tb.Select("b"); v != nil {
		t.Fatalf("got %v", v.Name)
	}
}

func req(method, target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func sm(exact string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}}
}

func TestRouteMatchers(t *testing.T) {
	rt := func(name string, m *routev3.RouteMatch) *routev3.Route {
		return &routev3.Route{Name: name, Match: m, Action: toCluster(name)}
	}
	regex := func(re string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: re} }
	tb, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
		rt("exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}),
		rt("nocase", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/NoCase"}, CaseSensitive: wrapperspb.Bool(false)}),
		rt("regex", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/items/[0-9]+`)}}),
		rt("sep", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}),
		rt("hdr-exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/h"}, Headers: []*routev3.HeaderMatcher{
			{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm("jason")}}}}),
		rt("hdr-regex-ic", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/h"}, Headers: []*routev3.HeaderMatcher{
			{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "BOB"}, IgnoreCase: true}}}}}),
		rt("hdr-absent", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/h"}, Headers: []*routev3.HeaderMatcher{
			{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true}}}),
		rt("method", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/m"}, Headers: []*routev3.HeaderMatcher{
			{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm("POST")}}}}),
		rt("query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/q"}, QueryParameters: []*routev3.QueryParameterMatcher{
			{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm("a b")}}}}),
		rt("grpc", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}),
		rt("never", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/f"}, RuntimeFraction: &corev3.RuntimeFractionalPercent{
			DefaultValue: &typev3.FractionalPercent{Numerator: 0}}}),
		rt("connect", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}}),
		rt("catchall", prefix("/")),
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    *http.Request
		want string
	}{
		{req("GET", "/exact"), "exact"},
		{req("GET", "/exact?x=1"), "exact"},
		{req("GET", "/exact/"), "catchall"},
		{req("GET", "/nocase/x"), "nocase"},
		{req("GET", "/NOCASE"), "nocase"},
		{req("GET", "/items/42"), "regex"},
		{req("GET", "/items/42/x"), "catchall"},
		{req("GET", "/api"), "sep"},
		{req("GET", "/api/v1"), "sep"},
		{req("GET", "/apiv1"), "catchall"},
		{req("GET", "/h", "end-user", "jason"), "hdr-exact"},
		{req("GET", "/h", "end-user", "Jason"), "hdr-absent"},
		{req("GET", "/h", "end-user", "bobby"), "hdr-regex-ic"},
		{req("GET", "/h", "x-canary", "1"), "catchall"},
		{req("POST", "/m"), "method"},
		{req("GET", "/m"), "catchall"},
		{req("GET", "/q?v=a+b"), "query"},
		{req("GET", "/q?w=1&v=a%20b"), "query"},
		{req("GET", "/q?v=ab"), "catchall"},
		{req("POST", "/x", "content-type", "application/grpc+proto"), "grpc"},
		{req("GET", "/f"), "catchall"},
		{req("CONNECT", "example.com:443"), "connect"},
	} {
		_, got := tb.Match(tc.r)
		name := "<nil>"
		if got != nil {
			name = got.Name
		}
		if name != tc.want {
			t.Errorf("%s %s %v: got %s want %s", tc.r.Method, tc.r.URL, tc.r.Header, name, tc.want)
		}
	}
}

func TestCompileErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		rc   *routev3.RouteConfiguration
		want string
	}{
		{"vhds", &routev3.RouteConfiguration{Name: "r", Vhds: &routev3.Vhds{}}, `route_config "r".vhds`},
		{"dup domain", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh("a", "x"), vh("b", "X")}}, `virtual_hosts[1 "b"].domains`},
		{"bad regex", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Name: "r1", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}, Action: toCluster("c")}}}}},
			`routes[0 "r1"].match.safe_regex`},
		{"hedge", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, HedgePolicy: &routev3.HedgePolicy{}}}}, "hedge_policy"},
		{"retry on", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,bogus"}}}}}}}}, `retry_policy.retry_on: unknown retry condition "bogus"`},
		{"host header", &routev3.RouteConfiguration{RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "Host", Value: "x"}}}}, "may not be modified"},
		{"weights", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
				WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(0)}}}}}}}}}}}, "total weight"},
	} {
		_, err := Compile(tc.rc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestHeaderOps(t *testing.T) {
	ops, err := compileHeaderOps([]*corev3.HeaderValueOption{
		{Header: &corev3.HeaderValue{Key: "x-append", Value: "2"}},
		{Header: &corev3.HeaderValue{Key: "x-over", Value: "new"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
		{Header: &corev3.HeaderValue{Key: "x-absent", Value: "no"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
		{Header: &corev3.HeaderValue{Key: "x-ifexists", Value: "no"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS},
		{Header: &corev3.HeaderValue{Key: "x-legacy", Value: "v"}, Append: wrapperspb.Bool(false)},
		{Header: &corev3.HeaderValue{Key: "x-empty", Value: ""}},
	}, []string{"x-drop"}, "p")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Append": {"1"}, "X-Over": {"old"}, "X-Absent": {"yes"}, "X-Drop": {"d"}, "X-Legacy": {"a", "b"}}
	ops.Apply(h)
	want := http.Header{"X-Append": {"1", "2"}, "X-Over": {"new"}, "X-Absent": {"yes"}, "X-Legacy": {"v"}}
	if len(h) != len(want) {
		t.Fatalf("got %v want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], ",") != strings.Join(v, ",") {
			t.Errorf("%s: got %v want %v", k, h[k], v)
		}
	}
	if _, err := compileHeaderOps([]*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}}, nil, "p"); err == nil {
		t.Error("formatter accepted")
	}
}

func oneRoute(t *testing.T, r *routev3.Route) *Route {
	t.Helper()
	tb, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{r}}}})
	if err != nil {
		t.Fatal(err)
	}
	return tb.VirtualHosts()[0].Routes[0]
}

func TestRedirectLocation(t *testing.T) {
	for _, tc := range []struct {
		rd     *routev3.RedirectAction
		target string
		want   string
		code   int
	}{
		{&routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}}, "http://a.com/x?q=1", "https://a.com/x?q=1", 301},
		{&routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}}, "http://a.com:80/x", "https://a.com/x", 301},
		{&routev3.RedirectAction{HostRedirect: "b.com", PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"},
			ResponseCode: routev3.RedirectAction_FOUND}, "http://a.com:8080/old?q=1", "http://b.com:8080/new?q=1", 302},
		{&routev3.RedirectAction{PortRedirect: 9000, StripQuery: true, PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/v2"},
			ResponseCode: routev3.RedirectAction_PERMANENT_REDIRECT}, "http://a.com/v1/items?q=1", "http://a.com:9000/v2/items", 308},
	} {
		rt := oneRoute(t, &routev3.Route{Match: prefix("/v1"), Action: &routev3.Route_Redirect{Redirect: tc.rd}})
		if tc.rd.GetPrefixRewrite() == "" {
			rt = oneRoute(t, &routev3.Route{Match: prefix("/"), Action: &routev3.Route_Redirect{Redirect: tc.rd}})
		}
		r := httptest.NewRequest("GET", tc.target, nil)
		if got := rt.Location(r, false); got != tc.want || rt.Redirect.Code != tc.code {
			t.Errorf("%s: got %s %d want %s %d", tc.target, got, rt.Redirect.Code, tc.want, tc.code)
		}
	}
}

func TestRewriteAndTimeout(t *testing.T) {
	rt := oneRoute(t, &routev3.Route{Match: prefix("/old/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "/"}}})
	if p, ok := rt.RewritePath("/old/x/y"); !ok || p != "/x/y" {
		t.Errorf("prefix rewrite: %q %v", p, ok)
	}
	if rt.Action.Timeout != DefaultTimeout {
		t.Errorf("unset timeout = %v", rt.Action.Timeout)
	}
	rt = oneRoute(t, &routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, Timeout: durationpb.New(0),
		RegexRewrite: &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: `^/service/([^/]+)(/.*)$`}, Substitution: `\2/instance/\1`}}}})
	if p, _ := rt.RewritePath("/service/foo/v1/api"); p != "/v1/api/instance/foo" {
		t.Errorf("regex rewrite: %q", p)
	}
	if rt.Action.Timeout != 0 {
		t.Errorf("0s timeout = %v", rt.Action.Timeout)
	}
}

func TestWeightedAndHash(t *testing.T) {
	rt := oneRoute(t, &routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
			{Name: "a", Weight: wrapperspb.UInt32(25)}, {Name: "b", Weight: wrapperspb.UInt32(75)}}}},
		HashPolicy: []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}},
	}}})
	counts := map[string]int{}
	for i := uint64(0); i < 100; i++ {
		n, _ := rt.Action.PickCluster(nil, i)
		counts[n]++
	}
	if counts["a"] != 25 || counts["b"] != 75 {
		t.Errorf("split %v", counts)
	}
	h1, ok1 := rt.Action.HashKey(req("GET", "/", "x-user", "alice"), "")
	h2, _ := rt.Action.HashKey(req("GET", "/", "x-user", "alice"), "")
	h3, _ := rt.Action.HashKey(req("GET", "/", "x-user", "bob"), "")
	_, ok4 := rt.Action.HashKey(req("GET", "/"), "")
	if !ok1 || h1 != h2 || h1 == h3 || ok4 {
		t.Errorf("hash: %v %v %v %v %v", h1, h2, h3, ok1, ok4)
	}
}
