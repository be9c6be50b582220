// Package filter is the HTTP filter chain of weft-proxy's connection
// manager: the Filter interface every HTTP filter implements, the per-request
// Stream they share, and the stream Info that access logs and metrics read.
//
// Filters are compiled once per HttpConnectionManager config and called per
// request in the configured order (Envoy's: fault → jwt_authn → rbac → cors
// → local rate limit → router). A filter either answers the request itself,
// returns an error (the connection manager turns it into the response and
// response flags, in one place), or passes the stream on with s.Next().
package filter

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// Filter is one compiled HTTP filter. Serve is called concurrently for
// many streams and must not keep s after it returns. Errors that carry a
// response (status, flags) are *rflag.Error.
type Filter interface {
	Serve(s *Stream) error
}

// Upstream is what the router needs from a cluster. The connection manager
// adapts internal/proxy/cluster's *Cluster to it; tests use fakes.
// Implementations are safe for concurrent use.
type Upstream interface {
	// RoundTrip sends one attempt and returns the response and the host
	// (ip:port) it went to. Errors are *rflag.Error (UH, UF, UO, UC, UR).
	RoundTrip(req *http.Request, o *Attempt) (*http.Response, string, error)
	// Dial opens a TCP connection to a host of the cluster (CONNECT and
	// protocol upgrades).
	Dial(ctx context.Context, o *Attempt) (net.Conn, string, error)
}

// Attempt carries what the router knows about one upstream attempt.
type Attempt struct {
	HashKey     uint64
	HasHash     bool
	Retry       bool     // a retry: counts against the cluster's max_retries
	Exclude     []string // hosts already tried (previous_hosts predicate)
	OriginalDst string   // ORIGINAL_DST clusters: where the request was going
	Protocol    downstream.Protocol
}

// Env resolves clusters by name against the current configuration.
type Env interface {
	// Upstream returns the named cluster, or nil when unknown.
	Upstream(name string) Upstream
}

// Stream is one request travelling through the filter chain. It is owned by
// the connection manager, which recycles it after the request completes.
type Stream struct {
	W      http.ResponseWriter
	Req    *http.Request
	Info   *Info
	Conn   *downstream.Info
	Env    Env
	Table  *route.Table
	VHost  *route.VirtualHost
	Route  *route.Route // nil when no route matched (the router answers 404 NR)
	Config *Config      // connection-manager settings filters need
	// Cancel cancels Req's context with a cause, when the connection
	// manager made that context for this stream alone (nil otherwise):
	// the router's stream idle timer uses it instead of a context of its
	// own (profile: that context was 3 allocations per request).
	Cancel context.CancelCauseFunc

	// Attempt is scratch space for the router's upstream options (kept
	// here so it does not escape to the heap per request).
	Attempt Attempt

	// Meta is the request's dynamic metadata (jwt_authn payload, RBAC
	// shadow results).
	Meta Metadata

	// respSet are response headers a filter wants set (overwriting the
	// upstream's) when the response is written, e.g. CORS headers.
	respSet []Header

	chain []Filter
	next  int
}

// Header is one header name (canonical) and value.
type Header struct{ Key, Value string }

// SetResponseHeader asks whoever writes the response to set k (canonical)
// to v, overwriting any value from upstream.
func (s *Stream) SetResponseHeader(k, v string) {
	s.respSet = append(s.respSet, Header{k, v})
}

// ApplyResponseHeaders sets the headers filters asked for on h.
func (s *Stream) ApplyResponseHeaders(h http.Header) {
	for _, kv := range s.respSet {
		h[kv.Key] = []string{kv.Value}
	}
}

// ErrRequestTimeout is the cause the connection manager cancels a request's
// context with when its request_timeout fires before the body arrived; the
// router answers 408.
var ErrRequestTimeout = errors.New("request timeout")

// ErrBadRequestBody is the cause the connection manager cancels a
// request's context with when its HTTP/1 body cannot be parsed (a
// malformed chunk): the upstream request is aborted at once and the
// router answers 400 (Envoy's codec error), or resets a started response.
var ErrBadRequestBody = errors.New("malformed request body")

// ErrStreamIdle is the cause a stream's context is cancelled with when
// its stream_idle_timeout fires (Envoy: 408 with flag SI before the
// response starts, a reset after); the connection stays open.
var ErrStreamIdle = errors.New("stream idle timeout")

// Config holds connection-manager settings that filters read.
type Config struct {
	// Upgrades enabled at the connection manager (lower-case types, e.g.
	// "websocket", "connect"); routes may override.
	Upgrades map[string]bool
	// StreamIdleTimeout ends a stream with no activity for this long
	// (0: disabled).
	StreamIdleTimeout time.Duration
	// TrustEnvoyHeaders: honour x-envoy-upstream-rq-timeout-ms and the
	// x-envoy-retry-* request headers (false at the edge, where Envoy
	// treats downstreams as external).
	TrustEnvoyHeaders bool
	// MaxStreamDuration bounds every stream (common_http_protocol_options;
	// a route's max_stream_duration wins). 0: none.
	MaxStreamDuration time.Duration
}

// Start resets the chain position to the first filter and runs it.
func (s *Stream) Start(chain []Filter) error {
	s.chain, s.next = chain, 0
	return s.Next()
}

// Next runs the next filter; past the end of the chain it does nothing
// (the router, last in the chain, never calls Next).
func (s *Stream) Next() error {
	if s.next >= len(s.chain) {
		return nil
	}
	f := s.chain[s.next]
	s.next++
	return f.Serve(s)
}

// Reset clears s for reuse.
func (s *Stream) Reset() {
	rs, ex := s.respSet[:0], s.Attempt.Exclude[:0]
	s.Meta.reset()
	*s = Stream{respSet: rs, Meta: s.Meta}
	s.Attempt.Exclude = ex
}
