package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/route"
)

type passed struct{ n int }

func (p *passed) Serve(*filter.Stream) error { p.n++; return nil }

func TestCors(t *testing.T) {
	pol, _ := anypb.New(&corsv3.CorsPolicy{
		AllowOriginStringMatch:       []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".ok.example"}}},
		AllowMethods:                 "GET",
		ForwardNotMatchingPreflights: wrapperspb.Bool(false),
	})
	tb, err := route.Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
		TypedPerFilterConfig: map[string]*anypb.Any{route.CorsFilter: pol},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, origin, reqMethod string
		forwarded                 bool
		acao                      string
	}{
		{"OPTIONS", "https://a.ok.example", "GET", false, "https://a.ok.example"},
		{"OPTIONS", "https://evil.example", "GET", false, ""},                 // not forwarded: forward_not_matching_preflights=false
		{"OPTIONS", "https://a.ok.example", "", true, "https://a.ok.example"}, // not a preflight: a simple request
		{"GET", "https://a.ok.example", "", true, "https://a.ok.example"},
		{"GET", "", "", true, ""},
	} {
		r := httptest.NewRequest(tc.method, "/", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.reqMethod != "" {
			r.Header.Set("Access-Control-Request-Method", tc.reqMethod)
		}
		w := httptest.NewRecorder()
		s := &filter.Stream{W: w, Req: r, Info: &filter.Info{}, Table: tb}
		s.VHost, s.Route = tb.Match(r)
		next := &passed{}
		if err := s.Start([]filter.Filter{Filter{}, next}); err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		s.ApplyResponseHeaders(h)
		acao := w.Header().Get("Access-Control-Allow-Origin") + h.Get("Access-Control-Allow-Origin")
		if (next.n == 1) != tc.forwarded || acao != tc.acao {
			t.Errorf("%s origin=%q: forwarded=%v acao=%q", tc.method, tc.origin, next.n == 1, acao)
		}
	}
}
