package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// hopHeaders are connection-specific and never forwarded (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Transfer-Encoding", "Upgrade"}

// stripHop removes hop-by-hop headers, including those Connection names.
func stripHop(h http.Header) {
	for _, c := range h["Connection"] {
		for _, f := range strings.Split(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	// TE is hop-by-hop, but "trailers" must reach gRPC servers.
	if te, ok := h["Te"]; ok && !(len(te) == 1 && strings.EqualFold(te[0], "trailers")) {
		delete(h, "Te")
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bodyBuffer reads up to MaxBuffer bytes of body. full is true when that was
// all of it; otherwise the returned reader replays the prefix then the rest.
func bodyBuffer(body io.ReadCloser, n int64) (data []byte, full bool, rest io.Reader, err error) {
	if n > MaxBuffer {
		return nil, false, body, nil
	}
	var buf bytes.Buffer
	if n > 0 {
		buf.Grow(int(n))
	}
	_, err = buf.ReadFrom(io.LimitReader(body, MaxBuffer+1))
	if err != nil {
		return nil, false, nil, err
	}
	if buf.Len() > MaxBuffer {
		return nil, false, io.MultiReader(bytes.NewReader(buf.Bytes()), body), nil
	}
	return buf.Bytes(), true, nil, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// forward sends the request to the cluster with retries and streams the
// response back, in steps: the retry policy, the body (mirror copy, retry
// replay), the upstream request's rewrites, the timeouts and the stream's
// context, the mirrors, then the attempts.
func (rt *Router) forward(s *filter.Stream, up filter.Upstream, wc *route.WeightedCluster) error {
	r := s.Req
	a := s.Route.Action
	trust := s.Config != nil && s.Config.TrustEnvoyHeaders
	policy := a.Retry
	if trust {
		policy = retryOverrides(r.Header, policy)
	}
	retries := 0
	if policy != nil {
		retries = policy.NumRetries
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	body, mirrorable, err := mirrorBody(r, a, hasBody)
	if err != nil {
		return err
	}
	var rb *replayBody
	if hasBody && retries > 0 {
		rb = newReplayBody(r.Body)
	}
	s.Attempt.OriginalDst = originalDst(s)
	rt.rewriteRequest(s, wc)
	timeout := rt.routeTimeout(s, trust)

	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var idle *idleTimer
	if idleFor := streamIdle(s, timeout); idleFor > 0 {
		if s.Cancel != nil {
			// The stream's own context is cancelled (cause
			// errStreamIdle); ctx, derived from it or it, follows.
			idle = startIdleCancel(s.Cancel, idleFor)
		} else {
			ctx, idle = startIdle(ctx, idleFor)
		}
		defer idle.stop()
		if hasBody {
			r.Body = idleBody{r.Body, idle, idle.gen.Load()}
			if rb != nil {
				rb.src = r.Body
			}
		}
	}
	if hasBody {
		// When the stream ends early (timeout, idle, client gone), a body
		// read blocked on a silent client must not hold the attempt.
		u := filter.NewBodyUnblocker(s.W)
		stop := context.AfterFunc(ctx, u.Unblock)
		defer func() {
			stop()
			u.Finish()
		}()
	}

	if len(a.Mirrors) > 0 && mirrorable {
		rt.mirror(s, r, body, timeout)
	}
	if len(a.Hash) > 0 {
		s.Attempt.HashKey, s.Attempt.HasHash = a.HashKey(r, sourceIP(s))
	}
	s.Attempt.Protocol = protocolOf(r)
	return rt.attempts(s, up, wc, policy, rb, hasBody, ctx, idle)
}

// mirrorBody copies a body for mirrors up front (bounded, known length
// only); the request then reads the copy. mirrorable: the mirrors can be
// sent (no body, or all of it copied).
func mirrorBody(r *http.Request, a *route.Action, hasBody bool) (body []byte, mirrorable bool, err error) {
	if !hasBody {
		return nil, true, nil
	}
	if len(a.Mirrors) == 0 || r.ContentLength < 0 || r.ContentLength > MaxBuffer {
		return nil, false, nil
	}
	data, full, rest, err := bodyBuffer(r.Body, r.ContentLength)
	if err != nil {
		if errors.Is(context.Cause(r.Context()), filter.ErrBadRequestBody) {
			return nil, false, badBody(r.Context())
		}
		return nil, false, &rflag.Error{Flag: rflag.DC, Details: "downstream_remote_disconnect", Err: err}
	}
	if !full {
		r.Body = readCloser{rest, r.Body}
		return nil, false, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	return data, true, nil
}

// rewriteRequest turns the downstream request into the upstream one, in
// place (the downstream request is ours): hop-by-hop headers, path and
// host rewrites, the route's header mutations.
func (rt *Router) rewriteRequest(s *filter.Stream, wc *route.WeightedCluster) {
	out, a := s.Req, s.Route.Action
	stripHop(out.Header)
	// Envoy answers 100-continue itself (the Go server does, when the
	// body is first read) and does not forward the expectation.
	delete(out.Header, "Expect")
	out.RequestURI = ""
	if p, ok := s.Route.RewritePath(out.URL.EscapedPath()); ok {
		if !rt.suppress {
			out.Header["X-Envoy-Original-Path"] = []string{out.URL.RequestURI()}
		}
		out.URL.Opaque = p
	}
	out.URL.Scheme, out.URL.Host = "http", out.Host
	if a.HostRewrite != "" {
		out.Host = a.HostRewrite
	}
	if wc != nil && wc.HostRewrite != "" {
		out.Host = wc.HostRewrite
	}
	requestHeaders(s, wc, out.Header)
}

// routeTimeout is the route's timeout after grpc-timeout, a trusted
// x-envoy-upstream-rq-timeout-ms and max_stream_duration; it announces it
// upstream (x-envoy-expected-rq-timeout-ms).
func (rt *Router) routeTimeout(s *filter.Stream, trust bool) time.Duration {
	r, a := s.Req, s.Route.Action
	timeout := a.Timeout
	if a.HasGrpcTimeout {
		if d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok {
			if a.GrpcTimeoutMax > 0 && d > a.GrpcTimeoutMax {
				d = a.GrpcTimeoutMax
			}
			timeout = d
		}
	}
	if v, ok := r.Header["X-Envoy-Upstream-Rq-Timeout-Ms"]; ok {
		// Envoy honours the override from trusted downstreams and never
		// forwards it.
		delete(r.Header, "X-Envoy-Upstream-Rq-Timeout-Ms")
		if ms, err := strconv.ParseUint(strings.TrimSpace(v[0]), 10, 32); err == nil && trust {
			timeout = time.Duration(ms) * time.Millisecond
		}
	}
	maxDur := a.MaxStreamDuration
	if maxDur == 0 && s.Config != nil {
		maxDur = s.Config.MaxStreamDuration
	}
	if maxDur > 0 && (timeout == 0 || maxDur < timeout) {
		timeout = maxDur
	}
	if timeout > 0 && !rt.suppress {
		r.Header["X-Envoy-Expected-Rq-Timeout-Ms"] = []string{strconv.FormatInt(timeout.Milliseconds(), 10)}
	}
	return timeout
}

// streamIdle is the stream idle timeout that applies (a route's replaces
// the manager's); 0 when none, or when the route timeout always fires
// first.
func streamIdle(s *filter.Stream, timeout time.Duration) time.Duration {
	idleFor := s.Route.Action.IdleTimeout
	if idleFor == 0 && s.Config != nil {
		idleFor = s.Config.StreamIdleTimeout
	}
	if idleFor > 0 && (timeout == 0 || timeout > idleFor) {
		return idleFor
	}
	return 0
}

// attempts sends the request, retrying as the policy allows, and streams
// the response that ends it (or replays the last retriable one).
func (rt *Router) attempts(s *filter.Stream, up filter.Upstream, wc *route.WeightedCluster, policy *route.RetryPolicy,
	rb *replayBody, hasBody bool, ctx context.Context, idle *idleTimer) error {
	r, out, opts := s.Req, s.Req, &s.Attempt
	retries := 0
	if policy != nil {
		retries = policy.NumRetries
	}
	attemptHdr := s.VHost != nil && s.VHost.IncludeAttemptCount
	var last *bufferedResponse // the last retriable response, replayed if a retry cannot be made
	for attempt := 1; ; attempt++ {
		s.Info.Attempts = attempt
		opts.Retry = attempt > 1
		if attemptHdr {
			out.Header["X-Envoy-Attempt-Count"] = attemptHeader(attempt)
		}
		switch {
		case rb != nil:
			out.Body = rb.view()
		case !hasBody:
			out.Body = http.NoBody
		}
		out.GetBody = nil
		tryCtx, tryCancel := ctx, context.CancelFunc(func() {})
		if policy != nil && policy.PerTryTimeout > 0 {
			tryCtx, tryCancel = context.WithTimeout(ctx, policy.PerTryTimeout)
		}
		start := time.Now()
		try := out
		if tryCtx != out.Context() {
			// Profile: the request copy was one allocation per request
			// when no timeout or idle timer gives the attempt a context
			// of its own.
			try = out.WithContext(tryCtx)
		}
		resp, host, err := up.RoundTrip(try, opts)
		s.Info.Host = host
		if resp != nil && resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
			s.Info.UpstreamPeer = resp.TLS.PeerCertificates[0]
		}
		if host != "" && policy != nil && policy.PreviousHosts {
			opts.Exclude = append(opts.Exclude, host)
		}
		left := attempt <= retries && (rb == nil || rb.replayable())
		if err != nil {
			tryCancel()
			ferr := rt.classify(r.Context(), ctx, tryCtx, err)
			if opts.Retry && isOverflow(ferr) && last != nil {
				// The retry budget (max_retries) is exhausted: answer with
				// what the previous attempt got, as Envoy does.
				return rt.replay(s, wc, last)
			}
			if left && retriableErr(policy, ferr) {
				if werr := rt.backoff(r.Context(), policy, attempt); werr != nil {
					return dc(werr)
				}
				continue
			}
			if attempt > 1 && retriableErr(policy, ferr) {
				ferr.Flag |= rflag.URX
			}
			return ferr
		}
		s.Info.ServiceTime = time.Since(start)
		if policy != nil && retriableResp(policy, resp) {
			if left {
				b, ok := bufferResponse(resp)
				if ok {
					last = b
					tryCancel()
					if werr := rt.backoff(r.Context(), policy, attempt); werr != nil {
						return dc(werr)
					}
					continue
				}
				// Too large to hold: forward it.
				resp.Body = b.asBody()
			} else if attempt > 1 {
				s.Info.Flags |= rflag.URX
			}
		}
		err = rt.respond(s, wc, resp, ctx, idle)
		tryCancel()
		return err
	}
}

// badBody is Envoy's answer to a request body its codec cannot parse:
// 400 (or a reset once the response started), flag DPE, and the
// connection closes after it.
func badBody(down context.Context) *rflag.Error {
	return &rflag.Error{Flag: rflag.DPE, Status: http.StatusBadRequest, Details: "http1.codec_error", Err: context.Cause(down)}
}

func dc(err error) error {
	return &rflag.Error{Flag: rflag.DC, Details: "downstream_remote_disconnect", Err: err}
}

func isOverflow(e *rflag.Error) bool { return e.Flag&rflag.UO != 0 }

// classify turns a RoundTrip error into an *rflag.Error: downstream gone
// (DC), route timeout (UT 504), per-try timeout (UT 504, retriable), or
// the cluster's own error.
func (rt *Router) classify(down, route, try context.Context, err error) *rflag.Error {
	switch {
	case context.Cause(down) == filter.ErrRequestTimeout:
		return &rflag.Error{Status: http.StatusRequestTimeout, Details: "request_overall_timeout", Err: err}
	case errors.Is(context.Cause(down), filter.ErrBadRequestBody):
		return badBody(down)
	case context.Cause(route) == errStreamIdle:
		// Before the downstream check: the idle timer may cancel the
		// stream's own context (filter.Stream.Cancel).
		return &rflag.Error{Flag: rflag.SI, Status: http.StatusRequestTimeout, Details: "stream_idle_timeout", Err: err}
	case down.Err() != nil:
		return &rflag.Error{Flag: rflag.DC, Details: "downstream_remote_disconnect", Err: err}
	case route.Err() != nil:
		return &rflag.Error{Flag: rflag.UT, Status: http.StatusGatewayTimeout, Details: "upstream_response_timeout", Err: err}
	case try.Err() != nil:
		return &rflag.Error{Flag: rflag.UT, Status: http.StatusGatewayTimeout, Details: "upstream_per_try_timeout", Err: err}
	}
	var fe *rflag.Error
	if errors.As(err, &fe) {
		c := *fe
		return &c
	}
	return &rflag.Error{Flag: rflag.UC, Status: http.StatusServiceUnavailable,
		Details: "upstream_reset_before_response_started{connection_termination}", Err: err}
}

// retriableErr applies retry_on to an attempt that got no response.
func retriableErr(p *route.RetryPolicy, e *rflag.Error) bool {
	if p == nil {
		return false
	}
	anyReset := p.On&(route.Retry5xx|route.RetryGatewayError|route.RetryReset) != 0
	switch {
	case e.Flag&rflag.UT != 0:
		// Per-try timeouts retry under 5xx, gateway-error and reset; the
		// route timeout ends everything.
		return e.Details == "upstream_per_try_timeout" && anyReset
	case e.Flag&rflag.UF != 0:
		return anyReset || p.On&(route.RetryConnectFailure|route.RetryResetBeforeRequest) != 0
	case e.Flag&(rflag.UC|rflag.UR) != 0:
		return anyReset || (p.On&route.RetryRefusedStream != 0 && strings.Contains(e.Details, "refused"))
	}
	return false
}

func retriableResp(p *route.RetryPolicy, resp *http.Response) bool {
	if p.RetriableStatus(resp.StatusCode) {
		return true
	}
	if gs := resp.Header.Get("Grpc-Status"); gs != "" && p.RetriableGrpc(gs) {
		return true
	}
	if len(p.Headers) > 0 {
		fake := http.Request{Header: resp.Header, Method: "", URL: nil}
		for _, h := range p.Headers {
			if h.Match(&fake) {
				return true
			}
		}
	}
	return false
}

// backoff waits a jittered exponential time: uniform in [0, base·2^(n-1)],
// capped at the max interval (Envoy's fully jittered backoff).
func (rt *Router) backoff(ctx context.Context, p *route.RetryPolicy, attempt int) error {
	upper := p.BackoffBase << min(attempt-1, 20)
	if upper > p.BackoffMax || upper <= 0 {
		upper = p.BackoffMax
	}
	if upper <= 0 {
		return nil
	}
	return rt.sleep(ctx, time.Duration(rand.Int64N(int64(upper))+1))
}

// bufferedResponse is a retriable response held in memory in case the retry
// cannot be made.
type bufferedResponse struct {
	resp *http.Response
	body []byte
	rest io.ReadCloser // non-nil when the body was too large to hold
}

func bufferResponse(resp *http.Response) (*bufferedResponse, bool) {
	data, full, rest, err := bodyBuffer(resp.Body, resp.ContentLength)
	if err != nil {
		resp.Body.Close()
		return &bufferedResponse{resp: resp}, true
	}
	if !full {
		return &bufferedResponse{resp: resp, rest: readCloser{rest, resp.Body}}, false
	}
	resp.Body.Close()
	return &bufferedResponse{resp: resp, body: data}, true
}

func (b *bufferedResponse) asBody() io.ReadCloser {
	if b.rest != nil {
		return b.rest
	}
	return io.NopCloser(bytes.NewReader(b.body))
}

func (rt *Router) replay(s *filter.Stream, wc *route.WeightedCluster, b *bufferedResponse) error {
	b.resp.Body = b.asBody()
	b.resp.ContentLength = int64(len(b.body))
	b.resp.Header.Del("Content-Length")
	return rt.respond(s, wc, b.resp, s.Req.Context(), nil)
}

// streaming reports whether each chunk must be flushed at once (gRPC,
// server-sent events, unknown length).
func streaming(resp *http.Response) bool {
	if resp.ContentLength < 0 {
		return true
	}
	ct := resp.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "text/event-stream")
}

// respond writes the upstream response downstream: headers (hop-by-hop
// removed, route mutations applied), body streamed through a pooled buffer,
// then trailers.
func (rt *Router) respond(s *filter.Stream, wc *route.WeightedCluster, resp *http.Response, ctx context.Context, idle *idleTimer) error {
	defer resp.Body.Close()
	// An HTTP/1 upstream response's fields are the router's alone once
	// read (an HTTP/2 transport may still refer to its map): the writer
	// takes the map instead of a copy, and reuses it after the response.
	if a, ok := s.W.(filter.HeaderAdopter); !ok || resp.ProtoMajor != 1 || !a.AdoptHeader(resp.Header) {
		h := s.W.Header()
		for k, vs := range resp.Header {
			h[k] = vs
		}
	}
	h := s.W.Header()
	stripHop(h)
	rt.responseHeaders(s, wc, h)
	if s.VHost.IncludeAttemptCountResponse {
		h["X-Envoy-Attempt-Count"] = attemptHeader(s.Info.Attempts)
	}
	if !rt.suppress {
		h["X-Envoy-Upstream-Service-Time"] = msHeader(s.Info.ServiceTime.Milliseconds())
	}
	s.Info.Details = "via_upstream"
	s.W.WriteHeader(resp.StatusCode)
	var fl http.Flusher
	if streaming(resp) {
		fl, _ = s.W.(http.Flusher)
		// A gRPC trailers-only response (grpc-status in the headers) must
		// leave as one HEADERS frame with END_STREAM: do not flush early.
		if _, trailersOnly := h["Grpc-Status"]; fl != nil && !trailersOnly {
			fl.Flush()
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		idle.touch()
		if n > 0 {
			if _, werr := s.W.Write(buf[:n]); werr != nil {
				s.Info.Flags |= rflag.DC
				return nil
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if context.Cause(ctx) == errStreamIdle {
				return &rflag.Error{Flag: rflag.SI, Details: "stream_idle_timeout", Err: rerr}
			}
			if ctx.Err() == context.DeadlineExceeded {
				return &rflag.Error{Flag: rflag.UT, Details: "upstream_response_timeout", Err: rerr}
			}
			if down := s.Req.Context(); errors.Is(context.Cause(down), filter.ErrBadRequestBody) {
				return badBody(down) // resets the started response
			}
			if s.Req.Context().Err() != nil {
				s.Info.Flags |= rflag.DC
				return nil
			}
			return &rflag.Error{Flag: rflag.UC, Details: "upstream_reset_after_response_started{connection_termination}", Err: rerr}
		}
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
	return nil
}

// grpcTimeout parses a grpc-timeout header ("100m", "5S").
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// attemptValues are shared x-envoy-attempt-count values (len == cap, so a
// later append copies rather than writes into them).
var attemptValues = func() (v [8][1]string) {
	for i := range v {
		v[i][0] = strconv.Itoa(i + 1)
	}
	return
}()

// msValues are shared header values for short upstream service times
// (profile: formatting the value and its slice were 2 allocations per
// request); len == cap, so an append copies.
var msValues = func() (v [100][1]string) {
	for i := range v {
		v[i][0] = strconv.Itoa(i)
	}
	return
}()

func msHeader(ms int64) []string {
	if ms >= 0 && ms < int64(len(msValues)) {
		return msValues[ms][:1:1]
	}
	return []string{strconv.FormatInt(ms, 10)}
}

func attemptHeader(n int) []string {
	if n >= 1 && n <= len(attemptValues) {
		return attemptValues[n-1][:1:1]
	}
	return []string{strconv.Itoa(n)}
}

// originalDst is where the request was going, for ORIGINAL_DST
// (passthrough) clusters: the authority of an absolute-URI (explicit proxy)
// request, else the captured connection's original destination, else the
// authority with the scheme's default port.
func originalDst(s *filter.Stream) string {
	r := s.Req
	if !r.URL.IsAbs() && s.Conn != nil && s.Conn.OriginalDst.IsValid() && s.Conn.OriginalDst != s.Conn.Local {
		return s.Conn.OriginalDst.String()
	}
	if _, _, err := net.SplitHostPort(r.Host); err == nil {
		return r.Host
	}
	port := "80"
	if r.URL.Scheme == "https" || r.TLS != nil {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(r.Host, "[]"), port)
}

// errStreamIdle cancels a stream that saw no activity for the connection
// manager's stream_idle_timeout (Envoy: 408 with flag SI before the
// response starts, a reset after).
var errStreamIdle = filter.ErrStreamIdle

// idleTimer cancels the stream's upstream context after a quiet period;
// every body read in either direction re-arms it. Timers are pooled
// (profile: a fresh AfterFunc timer, its closure and this struct were 3 of
// the router's allocations per request); one goes back to the pool only
// when Stop caught it before it fired, so a late callback never sees the
// next stream.
type idleTimer struct {
	t      *time.Timer
	d      time.Duration
	mu     sync.Mutex
	cancel context.CancelCauseFunc // nil once stopped
	gen    atomic.Uint64           // bumped by stop: a late body read must not touch a reused timer
}

var idlePool sync.Pool

func startIdle(ctx context.Context, d time.Duration) (context.Context, *idleTimer) {
	ctx, cancel := context.WithCancelCause(ctx)
	return ctx, startIdleCancel(cancel, d)
}

// startIdleCancel starts an idle timer that calls cancel(errStreamIdle).
func startIdleCancel(cancel context.CancelCauseFunc, d time.Duration) *idleTimer {
	i, _ := idlePool.Get().(*idleTimer)
	if i == nil {
		i = &idleTimer{}
		i.t = time.AfterFunc(time.Hour, i.fire)
		i.t.Stop()
	}
	i.mu.Lock()
	i.d, i.cancel = d, cancel
	i.mu.Unlock()
	i.t.Reset(d)
	return i
}

func (i *idleTimer) fire() {
	i.mu.Lock()
	cancel := i.cancel
	i.mu.Unlock()
	if cancel != nil {
		cancel(errStreamIdle)
	}
}

func (i *idleTimer) touch() {
	if i != nil {
		i.t.Reset(i.d)
	}
}

func (i *idleTimer) stop() {
	i.gen.Add(1)
	i.mu.Lock()
	i.cancel = nil
	i.mu.Unlock()
	if i.t.Stop() {
		idlePool.Put(i)
	}
}

// idleBody re-arms the idle timer as the request body streams upstream
// (only while its stream lasts: a transport may read after that).
type idleBody struct {
	io.ReadCloser
	idle *idleTimer
	gen  uint64
}

func (b idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.idle.touchIf(b.gen)
	return n, err
}

// touchIf re-arms the timer if it still belongs to the stream of gen. The
// transport's body writer may read after its stream ended, when the timer
// may already serve another stream: the check and the re-arm are one step
// under mu, which startIdleCancel holds to hand the timer to a new stream.
func (i *idleTimer) touchIf(gen uint64) {
	i.mu.Lock()
	if i.gen.Load() == gen && i.cancel != nil {
		i.t.Reset(i.d)
	}
	i.mu.Unlock()
}

// retryOverrides applies the x-envoy-retry-on, x-envoy-retry-grpc-on,
// x-envoy-max-retries and x-envoy-upstream-rq-per-try-timeout-ms request
// headers: conditions are added to the route's, the counts replace them.
// The route's policy is copied, never changed.
func retryOverrides(h http.Header, p *route.RetryPolicy) *route.RetryPolicy {
	on := h["X-Envoy-Retry-On"]
	grpcOn := h["X-Envoy-Retry-Grpc-On"]
	maxR := h["X-Envoy-Max-Retries"]
	perTry := h["X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms"]
	if on == nil && grpcOn == nil && maxR == nil && perTry == nil {
		return p
	}
	delete(h, "X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms")
	var cp route.RetryPolicy
	if p != nil {
		cp = *p
	} else {
		if on == nil && grpcOn == nil {
			return nil // counts alone do not enable retries
		}
		cp = *route.DefaultRetryPolicy()
	}
	for _, v := range on {
		cp.On |= route.ParseRetryOn(v)
	}
	for _, v := range grpcOn {
		cp.On |= route.ParseRetryOn(v)
	}
	if len(maxR) > 0 {
		if n, err := strconv.ParseUint(strings.TrimSpace(maxR[0]), 10, 16); err == nil {
			cp.NumRetries = int(n)
		}
	}
	if len(perTry) > 0 {
		if ms, err := strconv.ParseUint(strings.TrimSpace(perTry[0]), 10, 32); err == nil {
			cp.PerTryTimeout = time.Duration(ms) * time.Millisecond
		}
	}
	return &cp
}

// sourceIP is the downstream address for source_ip hashing: Envoy's
// trusted client address when the connection manager computed one.
func sourceIP(s *filter.Stream) string {
	if s.Info.ClientIP != "" {
		return s.Info.ClientIP
	}
	if s.Conn != nil && s.Conn.Remote.IsValid() {
		return s.Conn.Remote.Addr().String()
	}
	return ""
}

// protocolOf is the downstream HTTP protocol of the request itself (the
// listener may not have sniffed it), for use_downstream_protocol clusters.
func protocolOf(r *http.Request) downstream.Protocol {
	if r.ProtoMajor == 2 {
		return downstream.HTTP2
	}
	return downstream.HTTP1
}
