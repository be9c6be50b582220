package filter

import (
	"crypto/x509"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// Info is what happened to one request, for access logs and metrics
// (Envoy's StreamInfo). Filled by the connection manager and the filters;
// read by Options.OnComplete after the response is finished. Not safe for
// use after OnComplete returns.
type Info struct {
	Start     time.Time
	Duration  time.Duration
	Method    string
	Path      string // as received (before rewrites)
	Protocol  string // HTTP/1.1, HTTP/2
	Authority string
	UserAgent string
	XFF       string // x-forwarded-for as forwarded
	// ClientIP is the trusted client address (Envoy's downstream remote
	// address after use_remote_address / xff_num_trusted_hops), which
	// RBAC's remote_ip and access logs use.
	ClientIP  string
	RequestID string
	Status    int // 0 when no response was sent
	Flags     rflag.Flags
	Details   string // %RESPONSE_CODE_DETAILS%, e.g. via_upstream, route_not_found
	BytesIn   int64
	BytesOut  int64
	Attempts  int
	RouteName string
	Operation string // the matched route's decorator operation ("" if none)
	// Propagate: the matched route's decorator may be propagated
	// (x-envoy-decorator-operation).
	Propagate bool
	// Tracing is set by the connection manager's Observer when its HCM
	// has tracing configured: which side of the call it traces.
	Tracing TraceSide
	// SpanName is the x-envoy-decorator-operation the peer sent (the
	// request's on ingress, the response's on egress), which names the
	// span instead of the route's decorator; SpanNameSet even when empty.
	SpanName    string
	SpanNameSet bool
	Cluster     string // upstream cluster
	Host        string // upstream host ip:port of the last attempt
	ServiceTime time.Duration
	Downstream  *downstream.Info
	// UpstreamPeer is the upstream's certificate when the cluster verified
	// it (mutual TLS to a sidecar): destination_principal on the client side.
	UpstreamPeer *x509.Certificate

	// Set by the connection manager's Observer (telemetry) and opaque to
	// everything else: the peer workload learned from metadata exchange,
	// whether the request is gRPC, the response's grpc-status, the request
	// and response headers for access-log %REQ(…)% / %RESP(…)%, the span.
	Peer           any
	GRPC           bool
	GRPCStatus     string
	RequestHeader  http.Header
	ResponseHeader http.Header
	Span           any // the sampled trace span of this hop
}

// TraceSide is the direction a traced connection manager serves (Envoy's
// tracing operation name: ingress for inbound listeners, egress otherwise).
type TraceSide uint8

const (
	NoTracing    TraceSide = iota
	TraceIngress           // server spans; the request may name the operation
	TraceEgress            // client spans; the operation is sent upstream
)

// HeaderDecoratorOperation carries a route decorator's operation between
// proxies (Envoy's x-envoy-decorator-operation).
const HeaderDecoratorOperation = "X-Envoy-Decorator-Operation"
