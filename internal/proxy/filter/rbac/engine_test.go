package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
)

// Builders for the proto trees, in Istio's shapes.
func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}
func prefixM(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}
func regexM(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}
func cidrR(a string, n uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: a, PrefixLen: wrapperspb.UInt32(n)}
}

var anyPerm = &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
var anyID = &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}

func permPath(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}
func permHeader(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}}}
}
func idHeader(name string, m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: &routev3.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}}}
}
func idAuth(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}
func idMeta(filter string, path []string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	mm := &matcherv3.MetadataMatcher{Filter: filter, Value: v}
	for _, k := range path {
		mm.Path = append(mm.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: mm}}
}
func strV(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}

// claimV is Istio's claim matcher: the value, or a list containing it.
func claimV(s string) *matcherv3.ValueMatcher {
	v := strV(exact(s))
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: []*matcherv3.ValueMatcher{
		{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: v}}}}, v}}}}
}

type req struct {
	method, path, host string
	hdr                map[string]string
	remote, clientIP   string // ip:port of the peer; trusted client ip
	dst                string // ip:port
	sni                string
	spiffe             string // verified peer URI SAN
	claims             map[string]any
	tcp                bool
}

func (r req) input(t testing.TB) *Input {
	in := &Input{Conn: &downstream.Info{ServerName: r.sni}}
	if r.remote == "" {
		r.remote = "10.0.0.1:5555"
	}
	in.Conn.Remote = netip.MustParseAddrPort(r.remote)
	if r.dst == "" {
		r.dst = "10.0.0.9:8080"
	}
	in.Conn.Local = netip.MustParseAddrPort(r.dst)
	if r.clientIP != "" {
		in.RemoteIP = netip.MustParseAddr(r.clientIP)
	}
	if r.spiffe != "" {
		u, _ := url.Parse(r.spiffe)
		cert := &x509.Certificate{URIs: []*url.URL{u}}
		in.Conn.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	if r.claims != nil {
		in.Meta = &filter.Metadata{}
		in.Meta.Set("envoy.filters.http.jwt_authn", map[string]any{"payload": r.claims})
	}
	if r.tcp {
		return in
	}
	if r.method == "" {
		r.method = "GET"
	}
	if r.path == "" {
		r.path = "/"
	}
	if r.host == "" {
		r.host = "httpbin"
	}
	hr, err := http.NewRequest(r.method, "http://"+r.host+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.hdr {
		hr.Header.Set(k, v)
	}
	in.Req, in.Path = hr, hr.URL.EscapedPath()
	return in
}

func TestEngine(t *testing.T) {
	tmpl, _ := anypb.New(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: "/store/{*}/items/{**}"})
	type c struct {
		r    req
		want bool
	}
	for _, tc := range []struct {
		name  string
		perm  *rbacv3.Permission
		id    *rbacv3.Principal
		cases []c
	}{
		{"path exact", permPath(exact("/admin")), anyID, []c{
			{req{path: "/admin"}, true}, {req{path: "/admin/"}, false}, {req{path: "/Admin"}, false},
			{req{path: "/admin?x=1"}, true}, {req{tcp: true}, false}}},
		{"path prefix", permPath(prefixM("/api/")), anyID, []c{{req{path: "/api/x"}, true}, {req{path: "/apix"}, false}}},
		{"uri template", &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{Name: "t", TypedConfig: tmpl}}}, anyID, []c{
			{req{path: "/store/a/items/b/c"}, true}, {req{path: "/store/a/b/items/c"}, false}, {req{path: "/store//items/x"}, false}}},
		{"method", permHeader(":method", exact("GET")), anyID, []c{{req{method: "GET"}, true}, {req{method: "POST"}, false}}},
		{"host ignore case", permHeader(":authority", &matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "httpbin.foo"}}), anyID, []c{
			{req{host: "HTTPBIN.foo"}, true}, {req{host: "other"}, false}}},
		{"destination port", &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9000}}, anyID, []c{
			{req{dst: "10.0.0.9:9000", tcp: true}, true}, {req{dst: "10.0.0.9:9001", tcp: true}, false}}},
		{"destination port range", &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPortRange{DestinationPortRange: nil}}, anyID, []c{
			{req{tcp: true}, false}}},
		{"destination ip", &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidrR("10.0.0.0", 24)}}, anyID, []c{
			{req{dst: "10.0.0.77:1", tcp: true}, true}, {req{dst: "10.0.1.77:1", tcp: true}, false}, {req{dst: "[::ffff:10.0.0.3]:1", tcp: true}, true}}},
		{"sni", &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: exact("www.example.com")}}, anyID, []c{
			{req{sni: "www.example.com", tcp: true}, true}, {req{sni: "", tcp: true}, false}}},
		{"not path", &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: permPath(exact("/admin"))}}, anyID, []c{
			{req{path: "/admin"}, false}, {req{path: "/x"}, true}}},
		{"and or", &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
			{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{permHeader(":method", exact("GET")), permHeader(":method", exact("HEAD"))}}}},
			permPath(prefixM("/info"))}}}}, anyID, []c{
			{req{method: "HEAD", path: "/info/x"}, true}, {req{method: "POST", path: "/info"}, false}, {req{method: "GET", path: "/x"}, false}}},
		{"direct remote ip", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidrR("192.168.1.0", 24)}}, []c{
			{req{remote: "192.168.1.7:1", clientIP: "8.8.8.8"}, true}, {req{remote: "192.168.2.7:1"}, false}}},
		{"source ip (deprecated) is the peer", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_SourceIp{SourceIp: cidrR("192.168.1.7", 32)}}, []c{
			{req{remote: "192.168.1.7:1"}, true}, {req{remote: "192.168.1.8:1"}, false}}},
		{"remote ip is the trusted client", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidrR("8.8.8.0", 24)}}, []c{
			{req{remote: "192.168.1.7:1", clientIP: "8.8.8.8"}, true}, {req{remote: "8.8.8.8:1", clientIP: "1.1.1.1"}, false},
			{req{remote: "8.8.8.8:1"}, true}}},
		{"ipv6", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidrR("2001:db8::", 32)}}, []c{
			{req{remote: "[2001:db8::1]:1"}, true}, {req{remote: "[2001:db9::1]:1"}, false}}},
		{"principal exact", anyPerm, idAuth(exact("spiffe://cluster.local/ns/default/sa/sleep")), []c{
			{req{spiffe: "spiffe://cluster.local/ns/default/sa/sleep"}, true},
			{req{spiffe: "spiffe://cluster.local/ns/default/sa/sleepy"}, false}, {req{}, false}}},
		{"any authenticated", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{}}}, []c{
			{req{spiffe: "spiffe://x/ns/a/sa/b"}, true}, {req{}, false}}},
		{"namespace regex (Istio's source.namespace)", anyPerm, idAuth(regexM(".*/ns/foo/.*")), []c{
			{req{spiffe: "spiffe://cluster.local/ns/foo/sa/x"}, true}, {req{spiffe: "spiffe://cluster.local/ns/foobar/sa/x"}, false}}},
		{"not principal", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: idAuth(prefixM("spiffe://cluster.local/ns/foo/"))}}, []c{
			{req{spiffe: "spiffe://cluster.local/ns/foo/sa/x"}, false}, {req{}, true}}},
		{"request header", anyPerm, idHeader("x-token", exact("admin")), []c{
			{req{hdr: map[string]string{"X-Token": "admin"}}, true}, {req{hdr: map[string]string{"X-Token": "user"}}, false}, {req{}, false},
			{req{tcp: true}, false}}},
		{"jwt principal iss/sub", anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			idMeta("envoy.filters.http.jwt_authn", []string{"payload", "iss"}, strV(exact("testing@secure.istio.io"))),
			idMeta("envoy.filters.http.jwt_authn", []string{"payload", "sub"}, strV(exact("testing@secure.istio.io")))}}}}, []c{
			{req{claims: map[string]any{"iss": "testing@secure.istio.io", "sub": "testing@secure.istio.io"}}, true},
			{req{claims: map[string]any{"iss": "testing@secure.istio.io", "sub": "other"}}, false}, {req{}, false}}},
		{"claim list or value", anyPerm, idMeta("envoy.filters.http.jwt_authn", []string{"payload", "groups"}, claimV("group1")), []c{
			{req{claims: map[string]any{"groups": []any{"group2", "group1"}}}, true},
			{req{claims: map[string]any{"groups": "group1"}}, true},
			{req{claims: map[string]any{"groups": []any{"group2"}}}, false}}},
		{"nested claim", anyPerm, idMeta("envoy.filters.http.jwt_authn", []string{"payload", "nested", "key1"}, claimV("valueA")), []c{
			{req{claims: map[string]any{"nested": map[string]any{"key1": []any{"valueA"}}}}, true},
			{req{claims: map[string]any{"nested": "valueA"}}, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, action := range []rbacv3.RBAC_Action{rbacv3.RBAC_ALLOW, rbacv3.RBAC_DENY} {
				e, err := Compile(&rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{
					"p": {Permissions: []*rbacv3.Permission{tc.perm}, Principals: []*rbacv3.Principal{tc.id}}}}, "rbac")
				if err != nil {
					if tc.name == "destination port range" {
						return
					}
					t.Fatal(err)
				}
				for i, cc := range tc.cases {
					allowed, pol := e.Eval(cc.r.input(t))
					matched := pol != ""
					if matched != cc.want || allowed != (cc.want == (action == rbacv3.RBAC_ALLOW)) {
						t.Errorf("%v case %d %+v: allowed %v policy %q, want match %v", action, i, cc.r, allowed, pol, cc.want)
					}
				}
			}
		})
	}
}

func TestEngineSemantics(t *testing.T) {
	never := &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: anyPerm}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: anyID}}},
	}
	in := req{}.input(t)
	// ALLOW with no policies, or only a never-matching one (Istio's `{}`
	// allow-nothing): everything is denied.
	for _, pols := range []map[string]*rbacv3.Policy{nil, {"ns[foo]-policy[allow-nothing]-rule[0]": never}} {
		e, err := Compile(&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: pols}, "r")
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := e.Eval(in); ok {
			t.Errorf("allow with %d never-matching policies allowed", len(pols))
		}
	}
	// DENY with a never-matching policy denies nothing; LOG allows always.
	for _, a := range []rbacv3.RBAC_Action{rbacv3.RBAC_DENY, rbacv3.RBAC_LOG} {
		e, _ := Compile(&rbacv3.RBAC{Action: a, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{anyID}}}}, "r")
		if ok, _ := e.Eval(in); ok != (a == rbacv3.RBAC_LOG) {
			t.Errorf("%v: allowed %v", a, ok)
		}
	}
	// The first matching policy in name order is reported.
	e, _ := Compile(&rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"b": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{anyID}},
		"a": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{anyID}}}}, "r")
	if _, p := e.Eval(in); p != "a" {
		t.Errorf("matched %q, want a", p)
	}
}

func TestCompileNACKs(t *testing.T) {
	for _, tc := range []struct {
		cfg  *rbacv3.RBAC
		want string
	}{
		{&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm}}}}, "must not be empty"},
		{&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Custom{}}}}}}, "principals[0]: principal *rbacv3.Principal_Custom not supported"},
		{&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Matcher{}}}, Principals: []*rbacv3.Principal{anyID}}}}, "not supported by weft-proxy"},
		{&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{anyID}, Condition: nil, CheckedCondition: nil}}}, ""},
		{&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{permPath(regexM("("))}, Principals: []*rbacv3.Principal{anyID}}}}, "safe_regex"},
		{&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidrR("nope", 8)}}}, Principals: []*rbacv3.Principal{anyID}}}}, "destination_ip"},
	} {
		_, err := Compile(tc.cfg, "rbac.rules")
		if tc.want == "" {
			if err != nil {
				t.Errorf("unexpected error %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to mention %q", err, tc.want)
		}
	}
}

// TestContainsShortcut: the regex shapes compiled to strings.Contains
// agree with the regex engine.
func TestContainsShortcut(t *testing.T) {
	for _, re := range []string{`.*/ns/foo/.*`, `.*/ns/f\.o/.*`, `.*/ns/a.*b/.*`, `.*x|y.*`, `.*\d.*`} {
		m := regexM(re)
		got, err := compileString(m, "p")
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := regexp.Compile(`^(?:` + re + `)$`)
		for _, v := range []string{"spiffe://td/ns/foo/sa/x", "spiffe://td/ns/fxo/sa/x", "spiffe://td/ns/f.o/sa/x", "/ns/foo/", "a/ns/foo/\n",
			"spiffe://td/ns/aZZb/sa", "x", "y", "7", "xy|", ""} {
			if got.Match(v) != ref.MatchString(v) {
				t.Errorf("%s on %q: %v, regex says %v", re, v, got.Match(v), ref.MatchString(v))
			}
		}
	}
}
