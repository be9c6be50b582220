package telemetry

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/filter"
)

func otelTracing(t *testing.T, percent float64, svc string, oc *tracev3.OpenTelemetryConfig) *hcmv3.HttpConnectionManager_Tracing {
	t.Helper()
	oc.ServiceName = svc
	a, err := anypb.New(oc)
	if err != nil {
		t.Fatal(err)
	}
	return &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: percent},
		Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: a}}}
}

// traceHop sends one request from an app through a client sidecar and a
// server sidecar (observers exchanging headers as the wire would) and
// returns the headers the server app received.
func traceHop(t *testing.T, client, server *Telemetry, ctc, stc *hcmv3.HttpConnectionManager_Tracing, in http.Header) http.Header {
	t.Helper()
	co, err := client.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_9080", Tracing: ctc})
	if err != nil {
		t.Fatal(err)
	}
	so, err := server.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080", Tracing: stc})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
	for k, v := range in {
		r.Header[k] = v
	}
	ci := &filter.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Cluster: "outbound|9080||reviews.default.svc.cluster.local"}
	co.Request(r, ci)
	sr := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
	sr.Header = r.Header.Clone()
	si := &filter.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Cluster: "inbound|9080||"}
	so.Request(sr, si)
	si.Status, si.Duration = 200, time.Millisecond
	so.Response(http.Header{}, si)
	so.Complete(si)
	ci.Status, ci.Duration = 200, 2*time.Millisecond
	co.Response(http.Header{}, ci)
	co.Complete(ci)
	return sr.Header
}

func TestSpanTreeAcrossTwoSidecars(t *testing.T) {
	for _, transport := range []string{"grpc", "http"} {
		t.Run(transport, func(t *testing.T) {
			rec := meshtest.NewTraceCollector()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var oc func() *tracev3.OpenTelemetryConfig
			if transport == "grpc" {
				gs := grpc.NewServer()
				collectortrace.RegisterTraceServiceServer(gs, rec)
				go gs.Serve(ln)
				defer gs.Stop()
				oc = func() *tracev3.OpenTelemetryConfig {
					return &tracev3.OpenTelemetryConfig{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{
						GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: ln.Addr().String(), StatPrefix: "otel"}}}}
				}
			} else {
				hs := &http.Server{Handler: rec}
				go hs.Serve(ln)
				defer hs.Close()
				// Through a cluster: Options.Dial resolves it.
				oc = func() *tracev3.OpenTelemetryConfig {
					return &tracev3.OpenTelemetryConfig{HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{
						Uri:              "http://otel-collector.observability.svc.cluster.local:4318/v1/traces",
						HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "outbound|4318||otel-collector.observability.svc.cluster.local"}}}}
				}
			}
			dial := func(ctx context.Context, cluster, _ string) (net.Conn, error) {
				if cluster != "outbound|4318||otel-collector.observability.svc.cluster.local" {
					t.Errorf("dialled cluster %q", cluster)
				}
				var d net.Dialer
				return d.DialContext(ctx, "tcp", ln.Addr().String())
			}
			client := New(Options{Node: meta("productpage-v1", "productpage", "v1"), Dial: dial})
			server := New(Options{Node: meta("reviews-v1", "reviews", "v1"), Dial: dial})
			// The app started a trace (W3C, sampled): both sidecars continue it.
			appTrace, appSpan := "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			got := traceHop(t, client, server, otelTracing(t, 0, "productpage.default", oc()), otelTracing(t, 0, "reviews.default", oc()),
				http.Header{"Traceparent": {"00-" + appTrace + "-" + appSpan + "-01"}, "Tracestate": {"vendor=x"}})
			rec.Wait(t, 2)
			client.Close()
			server.Close()
			cs, ss := rec.Spans("productpage.default"), rec.Spans("reviews.default")
			if len(cs) != 1 || len(ss) != 1 {
				t.Fatalf("spans: client %d, server %d", len(cs), len(ss))
			}
			c, s := cs[0], ss[0]
			if spanIDString(c.GetTraceId()) != appTrace || spanIDString(s.GetTraceId()) != appTrace {
				t.Errorf("trace ids %x %x, want %s", c.GetTraceId(), s.GetTraceId(), appTrace)
			}
			if spanIDString(c.GetParentSpanId()) != appSpan {
				t.Errorf("client span parent %x, want the app's %s", c.GetParentSpanId(), appSpan)
			}
			if !bytes.Equal(s.GetParentSpanId(), c.GetSpanId()) {
				t.Errorf("server span parent %x, want the client span %x", s.GetParentSpanId(), c.GetSpanId())
			}
			if c.GetKind() != tracev1.Span_SPAN_KIND_CLIENT || s.GetKind() != tracev1.Span_SPAN_KIND_SERVER {
				t.Errorf("kinds %v %v", c.GetKind(), s.GetKind())
			}
			if c.GetName() != "reviews.default.svc.cluster.local:9080/*" || c.GetTraceState() != "vendor=x" {
				t.Errorf("client span name %q, tracestate %q", c.GetName(), c.GetTraceState())
			}
			// The server app sees the server span as its parent, in both formats.
			wantTP := "00-" + appTrace + "-" + spanIDString(s.GetSpanId()) + "-01"
			if got.Get("Traceparent") != wantTP || got.Get("X-B3-Traceid") != appTrace ||
				got.Get("X-B3-Spanid") != spanIDString(s.GetSpanId()) || got.Get("X-B3-Parentspanid") != spanIDString(c.GetSpanId()) ||
				got.Get("X-B3-Sampled") != "1" {
				t.Errorf("app headers: %v, want traceparent %s", got, wantTP)
			}
		})
	}
}

func TestSamplingAndB3(t *testing.T) {
	rec := meshtest.NewTraceCollector()
	hs := httptest.NewServer(rec)
	defer hs.Close()
	oc := func() *tracev3.OpenTelemetryConfig {
		return &tracev3.OpenTelemetryConfig{HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: hs.URL + "/v1/traces"}}}
	}
	client := New(Options{Node: meta("curl", "curl", "")})
	server := New(Options{Node: meta("httpbin-v1", "httpbin", "v1")})
	// 0%: a request without a decision is not sampled, but propagated.
	got := traceHop(t, client, server, otelTracing(t, 0, "c", oc()), otelTracing(t, 100, "s", oc()), nil)
	if tp := extract(got); !tp.valid || tp.sampled {
		t.Errorf("unsampled trace: %+v from %v", tp, got)
	}
	// B3 in, sampled: continued with the B3 trace id.
	got = traceHop(t, client, server, otelTracing(t, 0, "c", oc()), otelTracing(t, 0, "s", oc()),
		http.Header{"X-B3-Traceid": {"463ac35c9f6413ad"}, "X-B3-Spanid": {"a2fb4a1d1a96d312"}, "X-B3-Sampled": {"1"}})
	rec.Wait(t, 2)
	if tid := got.Get("X-B3-Traceid"); tid != "0000000000000000463ac35c9f6413ad" {
		t.Errorf("B3 trace id onward %q", tid)
	}
	// 100% on the client: a new root trace.
	traceHop(t, client, server, otelTracing(t, 100, "c", oc()), otelTracing(t, 0, "s", oc()), nil)
	rec.Wait(t, 2)
	client.Close()
	server.Close()
	if n := len(rec.Spans("c")) + len(rec.Spans("s")); n != 4 {
		t.Errorf("%d spans, want 4 (the 0%% hop sends none)", n)
	}
	root := rec.Spans("c")[len(rec.Spans("c"))-1]
	if len(root.GetParentSpanId()) != 0 {
		t.Errorf("a new trace's client span has parent %x", root.GetParentSpanId())
	}
}

func TestExtractRejectsGarbage(t *testing.T) {
	for _, h := range []http.Header{
		{"Traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}},
		{"Traceparent": {"zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}},
		{"X-B3-Traceid": {"xyz"}, "X-B3-Spanid": {"a2fb4a1d1a96d312"}},
		{"B3": {"1"}},
	} {
		if tc := extract(h); tc.valid {
			t.Errorf("%v: accepted", h)
		}
	}
}
