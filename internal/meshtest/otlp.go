package meshtest

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TraceCollector is an in-process OTLP trace collector: register it as a
// gRPC TraceService or serve it over HTTP (POST /v1/traces,
// application/x-protobuf). It keeps the spans by their resource's
// service.name. Safe for concurrent use.
type TraceCollector struct {
	collectortrace.UnimplementedTraceServiceServer

	mu    sync.Mutex
	spans map[string][]*tracev1.Span
	got   chan struct{} // one token per span, for Wait
}

// NewTraceCollector returns an empty collector.
func NewTraceCollector() *TraceCollector {
	return &TraceCollector{spans: map[string][]*tracev1.Span{}, got: make(chan struct{}, 1<<16)}
}

// Export is the OTLP/gRPC TraceService method.
func (c *TraceCollector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is OTLP/HTTP with protobuf bodies; anything else is a 400.
func (c *TraceCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := &collectortrace.ExportTraceServiceRequest{}
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.add(req)
	w.WriteHeader(http.StatusOK)
}

func (c *TraceCollector) add(req *collectortrace.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans[svc] = append(c.spans[svc], ss.GetSpans()...)
			for range ss.GetSpans() {
				select {
				case c.got <- struct{}{}:
				default: // nobody waits for that many
				}
			}
		}
	}
}

// Spans returns the spans received from service svc so far.
func (c *TraceCollector) Spans(svc string) []*tracev1.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracev1.Span(nil), c.spans[svc]...)
}

// All returns every span received so far, by service.
func (c *TraceCollector) All() map[string][]*tracev1.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]*tracev1.Span, len(c.spans))
	for k, v := range c.spans {
		out[k] = append([]*tracev1.Span(nil), v...)
	}
	return out
}

// Wait blocks until n more spans have arrived, failing t after 10 s.
func (c *TraceCollector) Wait(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("only %d of %d spans arrived", i, n)
		}
	}
}
