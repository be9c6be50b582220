package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// Envoy sends an egress route's decorator operation upstream in
// x-envoy-decorator-operation when tracing is on and the decorator
// propagates (the default); not on ingress, untraced, or propagate false.
func TestDecoratorOperationSentUpstream(t *testing.T) {
	const op = "reviews.default.svc.cluster.local:9080/*"
	for _, tc := range []struct {
		name      string
		side      filter.TraceSide
		propagate *wrapperspb.BoolValue
		want      string
	}{
		{"egress", filter.TraceEgress, nil, op},
		{"egress propagate true", filter.TraceEgress, wrapperspb.Bool(true), op},
		{"egress propagate false", filter.TraceEgress, wrapperspb.Bool(false), ""},
		{"ingress", filter.TraceIngress, nil, ""},
		{"no tracing", filter.NoTracing, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := route.Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
				Routes: []*routev3.Route{{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Decorator: &routev3.Decorator{Operation: op, Propagate: tc.propagate},
					Action:    &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			up := &fakeUpstream{results: []func(*http.Request) (*http.Response, error){func(r *http.Request) (*http.Response, error) {
				got = r.Header.Get(filter.HeaderDecoratorOperation)
				return status(200, "ok")(r)
			}}}
			rt, err := New(nil, Options{Sleep: func(ctx context.Context, d time.Duration) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/x", nil)
			s := &filter.Stream{W: httptest.NewRecorder(), Req: r, Info: &filter.Info{Tracing: tc.side}, Env: fakeEnv{"c": up}, Table: tb}
			s.VHost, s.Route = tb.Match(r)
			if err := s.Start([]filter.Filter{rt}); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("upstream x-envoy-decorator-operation = %q, want %q", got, tc.want)
			}
			if s.Info.Operation != op || s.Info.Propagate != (tc.propagate == nil || tc.propagate.GetValue()) {
				t.Errorf("info operation %q propagate %v", s.Info.Operation, s.Info.Propagate)
			}
		})
	}
}
