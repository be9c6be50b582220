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

// A server span is named by the matched route's decorator, the
// destination service as Istio writes it ("productpage...:9080/*"), not
// the Host the caller sent (an ingress request carries the gateway's
// address); without a route the name falls back to the destination.
func TestServerSpanNamedByRoute(t *testing.T) {
	rec := meshtest.NewTraceCollector()
	hs := httptest.NewServer(rec)
	defer hs.Close()
	oc := &tracev3.OpenTelemetryConfig{HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: hs.URL + "/v1/traces"}}}
	server := New(Options{Node: meta("productpage-v1", "productpage", "v1")})
	so, err := server.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080", Tracing: otelTracing(t, 100, "s", oc)})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"productpage.default.svc.cluster.local:9080/*", ""} {
		r := httptest.NewRequest("GET", "http://127.0.9.3:8080/productpage", nil)
		info := &filter.Info{Start: time.Now(), Method: "GET", Authority: "127.0.9.3:8080", Cluster: "inbound|9080||", Operation: op}
		so.Request(r, info)
		info.Status, info.Duration = 200, time.Millisecond
		so.Response(http.Header{}, info)
		so.Complete(info)
	}
	rec.Wait(t, 2)
	server.Close()
	spans := rec.Spans("s")
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	if got := spans[0].GetName(); got != "productpage.default.svc.cluster.local:9080/*" {
		t.Errorf("span with a route decorator named %q", got)
	}
	if got := spans[1].GetName(); got != "productpage.default:9080/*" {
		t.Errorf("span without a decorator named %q, want the workload's own service and port", got)
	}
}
