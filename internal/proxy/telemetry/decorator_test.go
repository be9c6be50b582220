package telemetry

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/filter"
)

// x-envoy-decorator-operation as Envoy's connection manager treats it:
// on ingress the request's header names the server span (and then no
// operation is returned), otherwise the route's propagating decorator is
// returned in the response; on egress the response's header names the
// client span and is removed before the app sees it.
func TestDecoratorOperationHeader(t *testing.T) {
	rec := meshtest.NewTraceCollector()
	hs := httptest.NewServer(rec)
	defer hs.Close()
	oc := func() *tracev3.OpenTelemetryConfig {
		return &tracev3.OpenTelemetryConfig{HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: hs.URL + "/v1/traces"}}}
	}
	tel := New(Options{Node: meta("reviews-v1", "reviews", "v1")})
	in, err := tel.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080", Tracing: otelTracing(t, 100, "in", oc())})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tel.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_9080", Tracing: otelTracing(t, 100, "out", oc())})
	if err != nil {
		t.Fatal(err)
	}
	untraced, err := tel.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_9080"})
	if err != nil {
		t.Fatal(err)
	}
	const routeOp = "reviews.default.svc.cluster.local:9080/*"
	exchange := func(o interface {
		Request(*http.Request, *filter.Info)
		Response(http.Header, *filter.Info)
		Complete(*filter.Info)
	}, reqOp, respOp *string, propagate bool) (*filter.Info, http.Header) {
		r := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
		if reqOp != nil {
			r.Header.Set(filter.HeaderDecoratorOperation, *reqOp)
		}
		info := &filter.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Cluster: "inbound|9080||"}
		o.Request(r, info)
		info.Operation, info.Propagate = routeOp, propagate // the router, after the route matched
		h := http.Header{}
		if respOp != nil {
			h.Set(filter.HeaderDecoratorOperation, *respOp)
		}
		info.Status, info.Duration = 200, time.Millisecond
		o.Response(h, info)
		o.Complete(info)
		return info, h
	}
	callerOp, serverOp := "productpage.default.svc.cluster.local:9080/*", "details.default.svc.cluster.local:9080/details*"

	// Ingress, the caller names the operation: span renamed, nothing returned.
	if info, h := exchange(in, &callerOp, nil, true); info.Tracing != filter.TraceIngress || h.Get(filter.HeaderDecoratorOperation) != "" {
		t.Errorf("ingress with a request operation: tracing %v, response header %q", info.Tracing, h.Get(filter.HeaderDecoratorOperation))
	}
	// Ingress without one: the route's operation is returned.
	if _, h := exchange(in, nil, nil, true); h.Get(filter.HeaderDecoratorOperation) != routeOp {
		t.Errorf("ingress response header %q, want the route's operation", h.Get(filter.HeaderDecoratorOperation))
	}
	// ...unless the decorator does not propagate.
	if _, h := exchange(in, nil, nil, false); h.Get(filter.HeaderDecoratorOperation) != "" {
		t.Errorf("propagate false, response header %q", h.Get(filter.HeaderDecoratorOperation))
	}
	// Egress: the response's operation names the client span; removed.
	if info, h := exchange(out, nil, &serverOp, true); info.Tracing != filter.TraceEgress || len(h[filter.HeaderDecoratorOperation]) != 0 {
		t.Errorf("egress: tracing %v, response header left %q", info.Tracing, h.Get(filter.HeaderDecoratorOperation))
	}
	// Untraced connection managers leave the header alone.
	if info, h := exchange(untraced, nil, &serverOp, true); info.Tracing != filter.NoTracing || h.Get(filter.HeaderDecoratorOperation) != serverOp {
		t.Errorf("untraced: tracing %v, response header %q", info.Tracing, h.Get(filter.HeaderDecoratorOperation))
	}
	rec.Wait(t, 4)
	tel.Close()
	names := func(svc string) []string {
		var out []string
		for _, s := range rec.Spans(svc) {
			out = append(out, s.GetName())
		}
		return out
	}
	if got := names("in"); len(got) != 3 || got[0] != callerOp || got[1] != routeOp || got[2] != routeOp {
		t.Errorf("server spans %q, want [caller's operation, route's, route's]", got)
	}
	if got := names("out"); len(got) != 1 || got[0] != serverOp {
		t.Errorf("client spans %q, want the operation the response named", got)
	}
}
