package hcm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/filter/fault"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// stream is the pooled per-request state.
type stream struct {
	fs   filter.Stream
	info filter.Info
	w    respWriter
}

// ServeHTTP handles one request: prepare headers, look the route up, run
// the filter chain, answer errors, report the stream info.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := m.streams.Get().(*stream)
	defer m.streams.Put(st)
	st.fs.Reset()
	st.info = filter.Info{Start: time.Now(), Method: r.Method, Path: r.RequestURI, Protocol: r.Proto,
		Authority: r.Host}
	info := &st.info
	if r.URL.IsAbs() {
		info.Path = r.URL.RequestURI() // absolute-form (explicit proxy): log the path, as Envoy does
	}
	cc := connFrom(r.Context())
	if cc != nil {
		info.Downstream = cc.info
		if r.TLS == nil {
			r.TLS = cc.info.TLS // the listener terminated TLS below our conn wrapper
		}
	}
	// The response ends the connection when the manager drains (HTTP/2:
	// x/net sends GOAWAY for "Connection: close") or net/http serves this
	// one request of a connection (see conn.closeAfter).
	closeConn := m.closing() || (cc != nil && cc.closeAfter && r.ProtoMajor == 1 && r.ProtoMinor == 1)
	st.w = respWriter{w: w, info: info, m: m, closeConn: closeConn}
	var cb *countingBody
	if r.ProtoMajor == 2 && r.ContentLength == 0 {
		// x/net/http2 gives every request a body, even one whose HEADERS
		// ended the stream; 0 is that or "content-length: 0". Skipping the
		// body's cancel context and request copy saved 3 allocations.
		r.Body = http.NoBody
	}
	if r.Body != nil && r.Body != http.NoBody {
		// Not pooled: a transport may still read a failed attempt's body
		// after the handler returned, and must never see the next request's.
		cb = &countingBody{rc: r.Body}
		if r.ProtoMajor == 1 {
			// Go's HTTP/1 server would otherwise drain the request body
			// before the response starts; a proxy streams both ways at once.
			http.NewResponseController(w).EnableFullDuplex()
		}
		// A body that fails (malformed, or the client went away) cancels
		// the request wherever it waits: the pool poisons the upstream
		// connection, so neither side waits for a timeout (issue 18).
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		cb.abort, cb.h1 = cancel, r.ProtoMajor == 1
		if m.requestTimeout > 0 {
			u := filter.NewBodyUnblocker(w)
			cb.timer = time.AfterFunc(m.requestTimeout, func() {
				cancel(filter.ErrRequestTimeout)
				u.Unblock() // a body read stuck on a silent client
			})
			st.w.timer = cb.timer
			defer cb.timer.Stop()
			defer u.Finish()
		}
		r = r.WithContext(ctx)
		r.Body = cb
	}
	verr := m.validate(r)
	m.prepare(r, cc, info)
	if m.obs != nil {
		m.obs.Request(r, info)
	}

	fs := &st.fs
	fs.W, fs.Req, fs.Info, fs.Env, fs.Config = &st.w, r, info, m.ups, &m.fcfg
	if cc != nil {
		fs.Conn = cc.info
	}
	if fw, ok := w.(*fastWriter); ok {
		fs.Cancel = fw.cancel // the lean path's context is this stream's alone
	} else if hw, ok := w.(*h2sWriter); ok {
		fs.Cancel = hw.st.cancel // so is the own HTTP/2 server's
	}
	var err error
	fs.Table = m.table
	if fs.Table == nil {
		fs.Table = m.env.RouteTable(m.rdsName)
	}
	switch {
	case verr != nil:
		err = verr
	case fs.Table == nil:
		err = &rflag.Error{Flag: rflag.NR, Status: http.StatusNotFound, Details: "route_not_found"}
	default:
		fs.VHost, fs.Route = fs.Table.Match(r)
		err = fs.Start(m.filters)
	}
	abort := false
	if err != nil {
		abort = m.localReply(st, err)
	}
	info.Duration = time.Since(info.Start)
	if cb != nil {
		info.BytesIn += cb.n.Load()
	}
	if m.obs != nil {
		m.obs.Complete(info)
	}
	if m.onComplete != nil {
		m.onComplete(info)
	}
	if cc != nil && cc.h2 != nil && !abort && st.w.wrote && !st.w.flushed && info.BytesOut > 0 &&
		info.BytesOut <= h2HandlerBuf && r.Method != http.MethodHead {
		// x/net sends the buffered response when this returns: HEADERS,
		// then DATA (see h2conn.Write).
		cc.h2.expectData()
	}
	if abort {
		// The response had started: reset the stream, as Envoy does.
		panic(http.ErrAbortHandler)
	}
}

// validate applies the codec rules Go's server does not: HTTP/1.0
// (426 unless accepted), max_headers_count (431) and headers with
// underscores (reject or drop).
func (m *Manager) validate(r *http.Request) error {
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		if !m.acceptHTTP10 {
			return &rflag.Error{Status: http.StatusUpgradeRequired, Details: "low_version"}
		}
		if r.Host == "" {
			r.Host = m.defaultHost10
		}
	}
	n := 0
	for k, vs := range r.Header {
		n += len(vs)
		if m.underscores != corev3.HttpProtocolOptions_ALLOW && strings.IndexByte(k, '_') >= 0 {
			if m.underscores == corev3.HttpProtocolOptions_REJECT_REQUEST {
				return &rflag.Error{Flag: rflag.DPE, Status: http.StatusBadRequest, Details: "http1.invalid_characters"}
			}
			delete(r.Header, k)
		}
	}
	if n > m.maxHeaders {
		return &rflag.Error{Flag: rflag.DPE, Status: http.StatusRequestHeaderFieldsTooLarge, Details: "http1.too_many_headers"}
	}
	return nil
}

// prepare applies the connection manager's request header rules:
// x-forwarded-for/-proto, x-request-id, path normalisation.
func (m *Manager) prepare(r *http.Request, cc *conn, info *filter.Info) {
	h := r.Header
	tls := r.TLS != nil || (cc != nil && cc.info.TLS != nil)
	if m.useRemote {
		// At the edge every downstream is external: Envoy drops the
		// x-envoy-* control headers it would otherwise honour (fault
		// headers stay: the fault filter decides about them).
		for _, k := range internalHeaders {
			delete(h, k)
		}
		if cc != nil && cc.info.Remote.IsValid() && !m.skipXFF {
			ip := cc.peerAddr()
			if prior, ok := h["X-Forwarded-For"]; ok && len(prior) > 0 {
				h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
			} else {
				h["X-Forwarded-For"] = []string{ip}
			}
		}
		h["X-Forwarded-Proto"] = schemeHdr(tls)
	} else if _, ok := h["X-Forwarded-Proto"]; !ok {
		h["X-Forwarded-Proto"] = schemeHdr(tls)
	}
	m.xfcc.apply(h, cc)
	if v, ok := h["X-Forwarded-For"]; ok && len(v) > 0 {
		info.XFF = strings.Join(v, ", ")
	}
	info.ClientIP = m.clientIP(info.XFF, cc)
	if id := h.Get("X-Request-Id"); id != "" {
		info.RequestID = id
	} else if m.genID {
		v := requestIDValue()
		info.RequestID, h["X-Request-Id"] = v[0], v
	}
	if v, ok := h["User-Agent"]; ok && len(v) > 0 {
		info.UserAgent = v[0]
	}
	if r.URL.Path != "" && (m.normalizePath || m.mergeSlashes) {
		r.URL.Path = normalize(r.URL.Path, m.normalizePath, m.mergeSlashes)
		r.URL.RawPath = ""
	}
}

// internalHeaders are the x-envoy-* request headers Envoy removes from
// external requests (ConnectionManagerUtility's internal header cleanup).
var internalHeaders = [...]string{
	"X-Envoy-Decorator-Operation", "X-Envoy-Downstream-Service-Cluster", "X-Envoy-Downstream-Service-Node",
	"X-Envoy-Expected-Rq-Timeout-Ms", "X-Envoy-External-Address", "X-Envoy-Internal", "X-Envoy-Ip-Tags",
	"X-Envoy-Max-Retries", "X-Envoy-Retry-Grpc-On", "X-Envoy-Retry-On", "X-Envoy-Retriable-Status-Codes",
	"X-Envoy-Retriable-Header-Names", "X-Envoy-Upstream-Alt-Stat-Name", "X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms",
	"X-Envoy-Upstream-Rq-Timeout-Alt-Response", "X-Envoy-Upstream-Rq-Timeout-Ms", "X-Envoy-Hedge-On-Per-Try-Timeout",
}

// clientIP is Envoy's "trusted client address": with use_remote_address
// the XFF list ends with the peer address just appended; either way the
// address xff_num_trusted_hops entries from the right is the client. With
// no usable XFF entry it is the connection's peer.
func (m *Manager) clientIP(xff string, cc *conn) string {
	peer := ""
	if cc != nil {
		peer = cc.peerAddr()
	}
	if xff == "" || (m.useRemote && m.xffHops == 0) {
		return peer
	}
	skip := int(m.xffHops)
	for {
		i := strings.LastIndexByte(xff, ',')
		entry := strings.TrimSpace(xff[i+1:])
		if skip == 0 {
			if _, err := netip.ParseAddr(entry); err == nil {
				return entry
			}
			return peer
		}
		if i < 0 {
			return peer
		}
		xff, skip = xff[:i], skip-1
	}
}

// schemeHdr returns a fresh one-element slice per call site value; the
// backing arrays are shared but have len == cap, so appends copy.
func schemeHdr(tls bool) []string {
	if tls {
		return httpsHdr[:1:1]
	}
	return httpHdr[:1:1]
}

var (
	closeHdr = [1]string{"close"}
	httpHdr  = [1]string{"http"}
	httpsHdr = [1]string{"https"}
)

// requestID makes a random UUIDv4 (x-request-id), without a syscall.
func requestID() string { return requestIDValue()[0] }

// idAlloc is a request id and the header value holding it, in one
// allocation (profile: the string and the slice were two per request).
type idAlloc struct {
	v [1]string
	b [36]byte
}

// requestIDValue returns a new request id as a one-element header value
// (len == cap, so an append copies).
func requestIDValue() []string {
	const hex = "0123456789abcdef"
	id := new(idAlloc)
	b := &id.b
	a, c := rand.Uint64(), rand.Uint64()
	a = a&^(0xf<<12) | 0x4<<12       // version 4
	c = c&^(0x3<<62) | uint64(2)<<62 // variant 10
	j := 0
	for i := 0; i < 32; i++ {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[j] = '-'
			j++
		}
		var nib uint64
		if i < 16 {
			nib = a >> (60 - 4*uint(i)) & 0xf
		} else {
			nib = c >> (60 - 4*uint(i-16)) & 0xf
		}
		b[j] = hex[nib]
		j++
	}
	// b is never written again: the string may share it.
	id.v[0] = unsafe.String(&b[0], len(b))
	return id.v[:]
}

// normalize removes dot segments (RFC 3986 5.2.4) and/or merges slashes.
func normalize(p string, dots, slashes bool) string {
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch {
		case i == 0:
			out = append(out, s)
		case s == "" && slashes && i != len(segs)-1:
		case s == "." && dots:
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case s == ".." && dots:
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	res := strings.Join(out, "/")
	if res == "" {
		return "/"
	}
	return res
}

// localReply answers a filter error the way Envoy's local replies do. It
// returns true when the response had already started, so the stream must
// be reset instead.
func (m *Manager) localReply(st *stream, err error) bool {
	info := &st.info
	var fe *rflag.Error
	if !errors.As(err, &fe) {
		fe = &rflag.Error{Status: http.StatusInternalServerError, Details: "internal_error", Err: err}
	}
	info.Flags |= fe.Flag
	info.Details = fe.Details
	if st.w.wrote {
		return true
	}
	if fe.Status == 0 {
		if fe.Flag&rflag.DC != 0 {
			return false // nobody to answer
		}
		return true
	}
	r := st.fs.Req
	body := replyBody(fe)
	h := st.w.Header()
	for k := range h {
		delete(h, k) // a filter may have staged headers for a response that never came
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		// gRPC clients need a trailers-only response with a grpc-status.
		gs := grpcStatusFor(fe)
		h["Content-Type"] = []string{"application/grpc"}
		h["Grpc-Status"] = []string{gs}
		if body != "" {
			h["Grpc-Message"] = []string{body}
		}
		st.w.WriteHeader(http.StatusOK)
		return false
	}
	if body != "" {
		h["Content-Type"] = []string{"text/plain"}
	}
	if fe.Flag&rflag.DPE != 0 && r.ProtoMajor == 1 {
		// A protocol error leaves the connection's framing in doubt.
		h["Connection"] = []string{"close"}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	st.w.WriteHeader(fe.Status)
	if body != "" && r.Method != http.MethodHead {
		io.WriteString(&st.w, body)
	}
	return false
}

// replyBody is Envoy's local reply text for the flag.
func replyBody(fe *rflag.Error) string {
	const reset = "upstream connect error or disconnect/reset before headers. reset reason: "
	f := fe.Flag
	switch {
	case f&rflag.FI != 0:
		return "fault filter abort"
	case f&rflag.UT != 0:
		return "upstream request timeout"
	case f&rflag.SI != 0:
		return "stream timeout"
	case fe.Details == "request_overall_timeout":
		return "request timeout"
	case f&rflag.UH != 0:
		return "no healthy upstream"
	case f&rflag.UO != 0:
		return reset + "overflow"
	case f&rflag.UF != 0:
		return reset + "remote connection failure"
	case f&rflag.UR != 0:
		return reset + "remote reset"
	case f&rflag.UC != 0:
		return reset + "connection termination"
	case f&rflag.RBAC != 0:
		return "RBAC: access denied"
	case f&rflag.RL != 0:
		return "local_rate_limited"
	}
	return ""
}

// grpcStatusFor maps a local reply to a grpc-status (Envoy's
// HTTP-to-gRPC mapping), unless a fault abort chose one.
func grpcStatusFor(fe *rflag.Error) string {
	var gs fault.GrpcStatus
	if errors.As(fe, &gs) {
		return string(gs)
	}
	switch fe.Status {
	case 400:
		return "13"
	case 401:
		return "16"
	case 403:
		return "7"
	case 404:
		return "12"
	case 429, 502, 503, 504:
		return "14"
	}
	return "2"
}

// respWriter records status and bytes, and rewrites the Server header.
type respWriter struct {
	w     http.ResponseWriter
	info  *filter.Info
	m     *Manager
	wrote bool
	// flushed: the handler flushed, so x/net's buffer no longer holds
	// the whole response.
	flushed bool
	timer   *time.Timer // request_timeout: stops when the response starts
	// closeConn: the response ends the connection (see conn.closeAfter).
	closeConn bool
}

var (
	_ http.Flusher         = (*respWriter)(nil)
	_ http.Hijacker        = (*respWriter)(nil)
	_ filter.HeaderAdopter = (*respWriter)(nil)
)

func (w *respWriter) Header() http.Header { return w.w.Header() }

// AdoptHeader passes the map to the server's writer when it can take it.
func (w *respWriter) AdoptHeader(h http.Header) bool {
	a, ok := w.w.(filter.HeaderAdopter)
	return ok && !w.wrote && a.AdoptHeader(h)
}

func (w *respWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code >= 200 {
		w.wrote = true
		if w.timer != nil {
			w.timer.Stop()
		}
		w.info.Status = code
		h := w.w.Header()
		if w.m.idInResponse && w.info.RequestID != "" {
			h["X-Request-Id"] = []string{w.info.RequestID}
		}
		if w.m.obs != nil {
			w.m.obs.Response(h, w.info)
		}
		switch w.m.serverMode {
		case hcmv3.HttpConnectionManager_OVERWRITE:
			h["Server"] = w.m.serverHdr
		case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
			if _, ok := h["Server"]; !ok {
				h["Server"] = w.m.serverHdr
			}
		}
		if w.closeConn {
			h["Connection"] = closeHdr[:1:1]
		}
	}
	w.w.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.w.Write(b)
	w.info.BytesOut += int64(n)
	return n, err
}

func (w *respWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.flushed = true
	if f, ok := w.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.w.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	w.wrote = true
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.w }

// countingBody counts request body bytes for the stream info, disarms
// the request timeout when the body is complete and cancels the request
// when the body fails.
type countingBody struct {
	rc    io.ReadCloser
	n     atomic.Int64
	timer *time.Timer // request_timeout, nil when none
	abort context.CancelCauseFunc
	h1    bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	switch {
	case err == nil:
	case err == io.EOF:
		if b.timer != nil {
			b.timer.Stop()
		}
	default:
		b.abort(bodyErrCause(err, b.h1))
	}
	return n, err
}

// bodyErrCause tells a client that went away (or a read ended by a
// deadline) from an HTTP/1 body that cannot be parsed.
func bodyErrCause(err error, h1 bool) error {
	var ne net.Error
	if !h1 || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) ||
		errors.Is(err, http.ErrBodyReadAfterClose) {
		return context.Canceled
	}
	return fmt.Errorf("%w: %v", filter.ErrBadRequestBody, err)
}

func (b *countingBody) Close() error { return b.rc.Close() }
