package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// exportQueue bounds spans waiting for the collector; beyond it spans
// are dropped and counted, never waited for.
const (
	exportQueue = 4096
	exportBatch = 512
)

// exporter sends spans to one OTLP collector (gRPC or HTTP/protobuf),
// batching whatever is queued. Shared by every HCM with the same provider.
type exporter struct {
	name     string // for stats
	send     func(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) error
	closeFn  func()
	resource *resourcev1.Resource
	q        chan *tracev1.Span
	stop     chan struct{}
	done     chan struct{}
	dropped  atomic.Int64
	exported atomic.Int64
	failed   atomic.Int64
}

// exporters holds one exporter per provider config.
type exporters struct {
	mu     sync.Mutex
	m      map[string]*exporter
	closed bool
}

// dialer reaches a collector: through a cluster (by name) when the config
// names one, else straight to the address.
func (t *Telemetry) dialer(cluster, addr string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		if cluster != "" && t.dial != nil {
			return t.dial(ctx, cluster, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// exporterFor compiles an envoy.tracers.opentelemetry provider.
func (t *Telemetry) exporterFor(pc *tracev3.Tracing_Http, p string) (*exporter, error) {
	if err := xdsfield.Check(pc, p, "name", "typed_config"); err != nil {
		return nil, err
	}
	oc := &tracev3.OpenTelemetryConfig{}
	if tc := pc.GetTypedConfig(); tc == nil || !tc.MessageIs(oc) {
		return nil, fmt.Errorf("%s: only envoy.tracers.opentelemetry (OpenTelemetryConfig) is supported by weft-proxy", p)
	} else if err := tc.UnmarshalTo(oc); err != nil {
		return nil, fmt.Errorf("%s.typed_config: %w", p, err)
	}
	p += ".typed_config"
	if err := xdsfield.Check(oc, p, "grpc_service", "http_service", "service_name", "resource_detectors"); err != nil {
		return nil, err
	}
	key, _ := proto.MarshalOptions{Deterministic: true}.Marshal(oc)
	t.exps.mu.Lock()
	defer t.exps.mu.Unlock()
	if t.exps.closed {
		return nil, fmt.Errorf("telemetry is closed")
	}
	if e := t.exps.m[string(key)]; e != nil {
		return e, nil
	}
	e := &exporter{q: make(chan *tracev1.Span, exportQueue), stop: make(chan struct{}), done: make(chan struct{})}
	svc := oc.GetServiceName()
	if svc == "" {
		svc = t.local.CanonicalService + "." + t.local.Namespace
	}
	e.resource = &resourcev1.Resource{Attributes: []*commonv1.KeyValue{strAttr("service.name", svc)}}
	switch {
	case oc.GetGrpcService() != nil:
		gs := oc.GetGrpcService()
		if err := xdsfield.Check(gs, p+".grpc_service", "envoy_grpc", "google_grpc", "timeout", "initial_metadata"); err != nil {
			return nil, err
		}
		var dial func(context.Context) (net.Conn, error)
		authority := ""
		switch {
		case gs.GetEnvoyGrpc() != nil:
			cl := gs.GetEnvoyGrpc().GetClusterName()
			if cl == "" {
				return nil, fmt.Errorf("%s.grpc_service.envoy_grpc.cluster_name: empty", p)
			}
			authority = gs.GetEnvoyGrpc().GetAuthority()
			if authority == "" {
				authority = cl
			}
			dial = t.dialer(cl, "")
		case gs.GetGoogleGrpc() != nil:
			authority = gs.GetGoogleGrpc().GetTargetUri()
			dial = t.dialer("", authority)
		default:
			return nil, fmt.Errorf("%s.grpc_service: envoy_grpc or google_grpc is required", p)
		}
		conn, err := grpc.NewClient("passthrough:///"+authority,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) }))
		if err != nil {
			return nil, fmt.Errorf("%s.grpc_service: %w", p, err)
		}
		client := collectortrace.NewTraceServiceClient(conn)
		e.name = "grpc." + authority
		e.send = func(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) error {
			_, err := client.Export(ctx, req)
			return err
		}
		e.closeFn = func() { conn.Close() }
	case oc.GetHttpService() != nil:
		hs := oc.GetHttpService()
		if err := xdsfield.Check(hs, p+".http_service", "http_uri", "request_headers_to_add"); err != nil {
			return nil, err
		}
		u, err := url.Parse(hs.GetHttpUri().GetUri())
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%s.http_service.http_uri.uri: %q is not a URL", p, hs.GetHttpUri().GetUri())
		}
		if u.Scheme == "" {
			u.Scheme = "http"
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("%s.http_service.http_uri.uri: scheme %q not supported by weft-proxy (http only)", p, u.Scheme)
		}
		addr := u.Host
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "80")
		}
		dial := t.dialer(hs.GetHttpUri().GetCluster(), addr)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}}
		hdrs := http.Header{}
		for _, h := range hs.GetRequestHeadersToAdd() {
			hdrs.Add(h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		target := u.String()
		e.name = "http." + u.Host
		e.send = func(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) error {
			b, err := proto.Marshal(req)
			if err != nil {
				return err
			}
			hr, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
			if err != nil {
				return err
			}
			for k, v := range hdrs {
				hr.Header[k] = v
			}
			hr.Header.Set("Content-Type", "application/x-protobuf")
			resp, err := client.Do(hr)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("collector answered %s", resp.Status)
			}
			return nil
		}
		e.closeFn = client.CloseIdleConnections
	default:
		return nil, fmt.Errorf("%s: grpc_service or http_service is required", p)
	}
	if t.exps.m == nil {
		t.exps.m = map[string]*exporter{}
	}
	t.exps.m[string(key)] = e
	go e.run(t)
	return e, nil
}

func (e *exporter) enqueue(s *tracev1.Span) {
	select {
	case e.q <- s:
	default:
		e.dropped.Add(1)
	}
}

// run sends whatever is queued as one batch, as soon as it is queued.
func (e *exporter) run(t *Telemetry) {
	defer close(e.done)
	batch := make([]*tracev1.Span, 0, exportBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		req := &collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
			Resource:   e.resource,
			ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "weft-proxy"}, Spans: batch}},
		}}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := e.send(ctx, req)
		cancel()
		if err != nil {
			e.failed.Add(int64(len(batch)))
			t.log.Warn("exporting spans failed", "collector", e.name, "spans", len(batch), "err", err)
		} else {
			e.exported.Add(int64(len(batch)))
		}
		batch = make([]*tracev1.Span, 0, exportBatch)
	}
	for {
		select {
		case s := <-e.q:
			batch = append(batch, s)
		drain:
			for len(batch) < exportBatch {
				select {
				case s := <-e.q:
					batch = append(batch, s)
				default:
					break drain
				}
			}
			flush()
		case <-e.stop:
			for {
				select {
				case s := <-e.q:
					batch = append(batch, s)
					if len(batch) == exportBatch {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

func (e *exporter) close() {
	close(e.stop)
	<-e.done
	e.closeFn()
}

func (es *exporters) close() {
	es.mu.Lock()
	defer es.mu.Unlock()
	es.closed = true
	for _, e := range es.m {
		e.close()
	}
	es.m = nil
}

func strAttr(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v}}}
}

// finish turns a sampled request into an OTLP span (Envoy's and Istio's
// attribute names) and queues it.
func (tr *tracer) finish(t *Telemetry, s *span, info *filter.Info) {
	end := s.start.Add(info.Duration)
	if info.Duration <= 0 {
		end = time.Now()
	}
	// The matched route's decorator names the span, as in Envoy: Istio
	// gives every route "<destination host>:<port>/<path>*", so client
	// and server spans carry the destination service's name. Without one
	// (a request rejected before routing), the name is the destination:
	// for a server span the workload's own service, never the Host the
	// caller sent.
	name := info.Operation
	if info.SpanName != "" {
		name = info.SpanName // the peer's x-envoy-decorator-operation
	}
	if name == "" {
		name = tr.fallbackName(t, s, info)
	}
	kind := tracev1.Span_SPAN_KIND_CLIENT
	if s.server {
		kind = tracev1.Span_SPAN_KIND_SERVER
	}
	os := &tracev1.Span{TraceId: append([]byte(nil), s.traceID[:]...), SpanId: append([]byte(nil), s.spanID[:]...),
		TraceState: s.tracestate, Name: name, Kind: kind,
		StartTimeUnixNano: uint64(s.start.UnixNano()), EndTimeUnixNano: uint64(end.UnixNano())}
	if !isZero(s.parentID[:]) {
		os.ParentSpanId = append([]byte(nil), s.parentID[:]...)
	}
	path := reqHeader(info, ":path")
	os.Attributes = []*commonv1.KeyValue{
		strAttr("component", "proxy"),
		strAttr("node_id", t.nodeID),
		strAttr("guid:x-request-id", info.RequestID),
		strAttr("http.method", info.Method),
		strAttr("http.url", "http://"+info.Authority+path),
		strAttr("http.protocol", info.Protocol),
		strAttr("user_agent", info.UserAgent),
		intAttr("http.status_code", int64(info.Status)),
		strAttr("response_flags", info.Flags.String()),
		intAttr("request_size", info.BytesIn),
		intAttr("response_size", info.BytesOut),
		strAttr("upstream_cluster", info.Cluster),
		strAttr("upstream_address", info.Host),
		strAttr("istio.canonical_service", t.local.CanonicalService),
		strAttr("istio.canonical_revision", t.local.CanonicalRevision),
		strAttr("istio.namespace", t.local.Namespace),
	}
	if d := info.Downstream; d != nil && d.Remote.IsValid() {
		os.Attributes = append(os.Attributes, strAttr("peer.address", d.Remote.Addr().Unmap().String()))
	}
	if info.Status >= 500 || info.Status == 0 {
		os.Status = &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR}
		os.Attributes = append(os.Attributes, strAttr("error", "true"))
	}
	tr.exp.enqueue(os)
}

// spanIDString is for logs and tests.
func spanIDString(b []byte) string { return hex.EncodeToString(b) }

// fallbackName names a span whose route had no decorator.
func (tr *tracer) fallbackName(t *Telemetry, s *span, info *filter.Info) string {
	parts := strings.Split(info.Cluster, "|")
	if s.server {
		host := t.metrics.metadataService(info.Cluster).host
		if host == "" {
			host = t.local.CanonicalService + "." + t.local.Namespace
		}
		if len(parts) == 4 && parts[0] == "inbound" {
			return host + ":" + parts[1] + "/*"
		}
		return host + "/*"
	}
	svc := t.metrics.destService(service{}, info.Cluster, info.Authority)
	port := ""
	if _, p, err := net.SplitHostPort(info.Authority); err == nil {
		port = p
	} else if len(parts) == 4 {
		port = parts[1]
	}
	if port == "" {
		return svc.host + "/*"
	}
	return svc.host + ":" + port + "/*"
}
