package hcm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// h2sStream is one request of an h2sConn.
type h2sStream struct {
	sc      *h2sConn
	id      uint32
	ctx     context.Context
	cancel  context.CancelCauseFunc // the request's context: its own (filter.Stream.Cancel)
	req     *http.Request
	handler func(http.ResponseWriter, *http.Request)
	body    *h2sBody // nil when HEADERS ended the stream
	w       h2sWriter
	dead    atomic.Bool // reset, or the connection ended: frames are no longer sent
	inline  bool        // served by the read loop's goroutine (h2inline.go)

	// Under sc.mu.
	sendWin     int64
	recvWin     int64
	unsent      int64 // receive window consumed, not yet credited
	removed     bool
	remoteEnded bool
	declared    int64 // content-length, -1 when none
	got         int64
}

// onHeaders opens a stream (or takes a request's trailers) and
// schedules its handler; a stream returned is for the read loop to serve
// inline (h2inline.go).
func (sc *h2sConn) onHeaders(f *http2.MetaHeadersFrame) (http2.ErrCode, *h2sStream) {
	id := f.StreamID
	if id%2 != 1 {
		return http2.ErrCodeProtocol, nil // clients use odd ids
	}
	sc.mu.Lock()
	st := sc.streams[id]
	sc.mu.Unlock()
	if st != nil {
		return sc.onTrailers(st, f), nil
	}
	if id <= sc.maxID.Load() {
		return http2.ErrCodeProtocol, nil // ids only grow (RFC 9113 5.1.1)
	}
	sc.maxID.Store(id)
	sc.mu.Lock()
	goingAway, open, unacked := sc.goingAway, len(sc.streams), sc.unacked
	sc.mu.Unlock()
	if goingAway {
		return http2.ErrCodeNo, nil // streams after our GOAWAY are ignored
	}
	if uint32(open) >= sc.maxStreams {
		code := http2.ErrCodeProtocol
		if unacked > 0 {
			code = http2.ErrCodeRefusedStream // it may not have seen our limit yet
		}
		sc.streamError(id, code)
		return http2.ErrCodeNo, nil
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		sc.streamError(id, http2.ErrCodeProtocol)
		return http2.ErrCodeNo, nil
	}
	st = &h2sStream{sc: sc, id: id, declared: 0}
	req, ok := sc.newRequest(st, f)
	if !ok {
		sc.streamError(id, http2.ErrCodeProtocol)
		return http2.ErrCodeNo, nil
	}
	st.req = req
	st.handler = sc.m.ServeHTTP
	if f.Truncated {
		st.handler = h2sTooLarge
	} else if err := h2sCheckHeaders(req.Header); err != nil {
		st.handler = func(w http.ResponseWriter, _ *http.Request) { http.Error(w, err.Error(), http.StatusBadRequest) }
	}
	st.w = h2sWriter{st: st, h: make(http.Header, 8), head: req.Method == http.MethodHead}
	sc.mu.Lock()
	st.sendWin, st.recvWin, st.remoteEnded = int64(sc.peerWin), int64(sc.streamWin), f.StreamEnded()
	if len(sc.streams) > 0 {
		sc.concurrent = true // the client multiplexes: no stream runs inline
	}
	inline := st.remoteEnded && sc.handlers == 0 && len(sc.streams) == 0 && sc.inlineOK()
	sc.streams[id] = st
	if sc.idleTimer != nil {
		sc.idleTimer.Stop()
	}
	if sc.handlers < int(sc.maxStreams) {
		sc.handlers++
		if inline {
			sc.mu.Unlock()
			return http2.ErrCodeNo, st
		}
		if sc.idleWorkers > 0 {
			sc.idleWorkers--
			sc.mu.Unlock()
			sc.work <- st // the idle worker is committed to receive
			return http2.ErrCodeNo, nil
		}
		sc.mu.Unlock()
		go sc.run(st)
		return http2.ErrCodeNo, nil
	}
	// Handlers of reset streams may still run: queue, within x/net's
	// bound (Rapid Reset).
	if len(sc.queue) >= 4*int(sc.maxStreams) {
		sc.mu.Unlock()
		return http2.ErrCodeEnhanceYourCalm, nil
	}
	sc.queue = append(sc.queue, st)
	sc.mu.Unlock()
	return http2.ErrCodeNo, nil
}

// onTrailers takes a request's trailing HEADERS.
func (sc *h2sConn) onTrailers(st *h2sStream, f *http2.MetaHeadersFrame) http2.ErrCode {
	sc.mu.Lock()
	ended := st.remoteEnded
	if !ended && f.StreamEnded() {
		st.remoteEnded = true
	}
	sc.mu.Unlock()
	if ended {
		sc.streamError(st.id, http2.ErrCodeStreamClosed)
		return http2.ErrCodeNo
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 || st.body == nil {
		sc.streamError(st.id, http2.ErrCodeProtocol)
		return http2.ErrCodeNo
	}
	var tr http.Header
	if st.req.Trailer != nil { // only declared trailers reach the handler, as x/net
		tr = http.Header{}
		for _, hf := range f.RegularFields() {
			k := textproto.CanonicalMIMEHeaderKey(hf.Name)
			if !httpguts.ValidTrailerHeader(k) {
				sc.streamError(st.id, http2.ErrCodeProtocol)
				return http2.ErrCodeNo
			}
			tr[k] = append(tr[k], hf.Value)
		}
	}
	if st.declared >= 0 && st.got != st.declared {
		st.body.fail(fmt.Errorf("http2: request declared a Content-Length of %d but only wrote %d bytes", st.declared, st.got))
		return http2.ErrCodeNo
	}
	st.body.end(tr)
	return http2.ErrCodeNo
}

// newRequest builds the request of a HEADERS frame, with x/net's checks
// (RFC 9113 8.3); false: malformed (a stream error).
func (sc *h2sConn) newRequest(st *h2sStream, f *http2.MetaHeadersFrame) (*http.Request, bool) {
	var method, scheme, authority, path string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		case ":path":
			path = hf.Value
		default:
			return nil, false // :protocol (extended CONNECT is off), or unknown
		}
	}
	connect := method == http.MethodConnect
	if connect {
		if path != "" || scheme != "" || authority == "" {
			return nil, false
		}
	} else if method == "" || path == "" || (scheme != "http" && scheme != "https") {
		return nil, false
	}
	regular := f.RegularFields()
	h := make(http.Header, len(regular))
	vals := make([]string, len(regular))
	for i, hf := range regular {
		k := sc.canonical(hf.Name)
		vals[i] = hf.Value
		if prev, ok := h[k]; ok {
			h[k] = append(prev, hf.Value)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	needsContinue := false
	if v, ok := h["Expect"]; ok && httpguts.HeaderValuesContainsToken(v, "100-continue") {
		needsContinue = true
		delete(h, "Expect")
	}
	if c := h["Cookie"]; len(c) > 1 {
		h["Cookie"] = []string{strings.Join(c, "; ")} // RFC 9113 8.2.3
	}
	var trailer http.Header
	for _, v := range h["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(k))
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
			default:
				if trailer == nil {
					trailer = http.Header{}
				}
				trailer[k] = nil
			}
		}
	}
	delete(h, "Trailer")
	if hv, ok := h["Host"]; ok {
		if len(hv) != 1 || (authority != "" && hv[0] != authority) {
			return nil, false
		}
		if authority == "" {
			authority = hv[0]
		}
		delete(h, "Host")
	}
	if strings.IndexByte(authority, '@') >= 0 && (scheme == "http" || scheme == "https") {
		return nil, false
	}
	if authority != "" && !httpguts.ValidHostHeader(authority) {
		return nil, false
	}
	var u *url.URL
	uri := path
	if connect {
		u, uri = &url.URL{Host: authority}, authority
	} else {
		if path[0] != '/' && path != "*" {
			return nil, false
		}
		var err error
		if u, err = url.ParseRequestURI(path); err != nil {
			return nil, false
		}
	}
	st.ctx, st.cancel = context.WithCancelCause(sc.ctx)
	r := http.Request{Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: h, Host: authority,
		RemoteAddr: sc.remote, RequestURI: uri, Trailer: trailer, Body: http.NoBody}
	if scheme == "https" {
		r.TLS = sc.tls
	}
	st.declared = 0
	if !f.StreamEnded() {
		st.declared = -1
		if v, ok := h["Content-Length"]; ok {
			st.declared = 0
			if n, err := strconv.ParseUint(v[0], 10, 63); err == nil {
				st.declared = int64(n)
			}
		}
		r.ContentLength = st.declared
		st.body = &h2sBody{st: st, trailer: trailer}
		st.body.cond.L = &st.body.mu
		st.body.needsContinue.Store(needsContinue)
		r.Body = st.body
	}
	req := r.WithContext(st.ctx)
	if st.body != nil {
		st.body.req = req
	}
	return req, true
}

// canonical is http.CanonicalHeaderKey with the common names interned.
func (sc *h2sConn) canonical(k string) string {
	if v, ok := h2sCommonCanon[k]; ok {
		return v
	}
	return textproto.CanonicalMIMEHeaderKey(k)
}

var h2sCommonCanon = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"content-length", "content-type", "cookie", "grpc-accept-encoding", "grpc-encoding", "grpc-timeout",
		"te", "user-agent", "x-forwarded-for", "x-forwarded-proto", "x-request-id", "x-b3-traceid", "x-b3-spanid",
		"x-b3-parentspanid", "x-b3-sampled", "traceparent", "tracestate", "x-envoy-attempt-count",
		"x-envoy-peer-metadata", "x-envoy-peer-metadata-id", "x-forwarded-client-cert", "origin", "referer",
		"if-none-match", "if-modified-since", "range"} {
		m[k] = textproto.CanonicalMIMEHeaderKey(k)
	}
	return m
}()

// h2sCheckHeaders: connection-specific fields are malformed in HTTP/2
// (RFC 9113 8.2.2); x/net answers 400.
func h2sCheckHeaders(h http.Header) error {
	for _, k := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade"} {
		if _, ok := h[k]; ok {
			return fmt.Errorf("request header %q is not valid in HTTP/2", k)
		}
	}
	if te := h["Te"]; len(te) > 0 && (len(te) > 1 || (te[0] != "trailers" && te[0] != "")) {
		return errors.New(`request header "TE" may only be "trailers" in HTTP/2`)
	}
	return nil
}

func h2sTooLarge(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	io.WriteString(w, "<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>")
}

// onData takes a DATA frame: flow control, then the stream's body.
func (sc *h2sConn) onData(f *http2.DataFrame) http2.ErrCode {
	id := f.StreamID
	fl := int64(f.Length) // padding counts against the windows too
	data := f.Data()
	sc.mu.Lock()
	if fl > sc.recvConn {
		sc.mu.Unlock()
		return http2.ErrCodeFlowControl
	}
	sc.recvConn -= fl
	st := sc.streams[id]
	if st == nil || st.remoteEnded || st.body == nil {
		sc.unsent += fl
		sc.mu.Unlock()
		sc.credit(nil, 0, false)
		switch {
		case id > sc.maxID.Load():
			return http2.ErrCodeProtocol // an idle stream
		case st != nil:
			sc.streamError(id, http2.ErrCodeStreamClosed)
		}
		return http2.ErrCodeNo // a closed stream's in-flight data
	}
	if fl > st.recvWin {
		sc.unsent += fl
		sc.mu.Unlock()
		sc.credit(nil, 0, false)
		sc.streamError(id, http2.ErrCodeFlowControl)
		return http2.ErrCodeNo
	}
	st.recvWin -= fl
	st.got += int64(len(data))
	tooMuch := st.declared >= 0 && st.got > st.declared
	end := f.StreamEnded()
	short := end && st.declared >= 0 && st.got < st.declared
	if end {
		st.remoteEnded = true
	}
	got, declared := st.got, st.declared
	sc.mu.Unlock()
	if pad := fl - int64(len(data)); pad > 0 {
		sc.credit(st, pad, false)
	}
	if tooMuch {
		st.body.fail(fmt.Errorf("http2: request declared a Content-Length of %d but sent %d bytes", declared, got))
		sc.streamError(id, http2.ErrCodeProtocol)
		return http2.ErrCodeNo
	}
	if short {
		// The body fails; the stream is not reset (as x/net): the
		// handler answers.
		st.body.push(data)
		st.body.fail(fmt.Errorf("http2: request declared a Content-Length of %d but only wrote %d bytes", declared, got))
		return http2.ErrCodeNo
	}
	if len(data) > 0 && !st.body.push(data) {
		sc.credit(st, int64(len(data)), false) // the handler closed the body: discarded
	}
	if end {
		st.body.end(nil)
	}
	return http2.ErrCodeNo
}

// credit returns n consumed bytes of st's (nil: only the connection's)
// receive window, sending WINDOW_UPDATE when enough accumulated (as
// x/net: 4 KiB, or what is left of the window).
func (sc *h2sConn) credit(st *h2sStream, n int64, inline bool) {
	var connInc, streamInc int64
	sc.mu.Lock()
	sc.unsent += n
	if sc.unsent > 0 && (sc.unsent >= h2sMinRefresh || sc.unsent >= sc.recvConn) {
		connInc, sc.unsent = sc.unsent, 0
		sc.recvConn += connInc
	}
	if st != nil && !st.removed && !st.remoteEnded {
		st.unsent += n
		if st.unsent > 0 && (st.unsent >= h2sMinRefresh || st.unsent >= st.recvWin) {
			streamInc, st.unsent = st.unsent, 0
			st.recvWin += streamInc
		}
	}
	sc.mu.Unlock()
	if connInc == 0 && streamInc == 0 {
		return
	}
	q := sc.queueCtrl
	if inline {
		q = sc.queueCtrlInline
	}
	q(func(fr *http2.Framer) error {
		if connInc > 0 {
			fr.WriteWindowUpdate(0, uint32(connInc))
		}
		if streamInc > 0 {
			fr.WriteWindowUpdate(st.id, uint32(streamInc))
		}
		return nil
	})
}

// abort ends a stream that was reset or whose connection ended: its
// handler's context is cancelled, body reads and writes fail.
func (st *h2sStream) abort(err error) {
	st.dead.Store(true)
	if st.cancel != nil {
		st.cancel(nil)
	}
	if st.body != nil {
		st.body.fail(err)
	}
}

// run serves st, then the streams queued behind it, then waits as the
// connection's idle worker for its next stream. Profile (the proxied h2c
// GET benchmark): a new goroutine per stream grew its stack from 2 KiB
// through the filter chain on every request (runtime.newstack, 8 % of
// the CPU); one kept per connection keeps its grown stack, as x/net's
// serve goroutine does.
func (sc *h2sConn) run(st *h2sStream) {
	for st != nil {
		sc.serveStream(st)
		st = sc.next()
	}
}

// next is a handler goroutine's next stream once its last one ended: a
// queued one, or as the idle worker the read loop's next; nil when the
// goroutine should end.
func (sc *h2sConn) next() *h2sStream {
	sc.mu.Lock()
	if len(sc.queue) > 0 {
		st := sc.queue[0]
		sc.queue[0] = nil
		sc.queue = sc.queue[1:]
		sc.mu.Unlock()
		return st
	}
	sc.handlers--
	sc.maybeLinger()
	sc.armIdleLocked()
	if sc.closed || sc.idleWorkers > 0 {
		sc.mu.Unlock()
		return nil
	}
	sc.idleWorkers++
	sc.mu.Unlock()
	return <-sc.work // nil when the connection ended
}

// serveStream runs the handler and ends the response.
func (sc *h2sConn) serveStream(st *h2sStream) {
	clean := false
	if !st.dead.Load() {
		clean = st.callHandler()
		if clean {
			clean = st.w.send(true) == nil
		}
		st.w.release() // the handler returned: nothing writes any more
	}
	st.cancel(nil)
	code, rst := http2.ErrCodeNo, false
	sc.mu.Lock()
	if !st.removed {
		switch {
		case !clean && !st.dead.Load():
			code, rst = http2.ErrCodeInternal, true // the handler aborted the response
		case clean && !st.remoteEnded:
			rst = true // the response is complete: the rest of the body is not needed (RFC 9113 8.1)
		}
		sc.removeLocked(st)
	}
	sc.mu.Unlock()
	if st.body != nil {
		st.body.fail(errH2StreamClosed)
	}
	if rst {
		id := st.id
		sc.queueCtrlInline(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
	}
	sc.credit(nil, 0, true)
}

// callHandler runs the handler; false when it panicked (an aborted
// response: http.ErrAbortHandler).
func (st *h2sStream) callHandler() (ok bool) {
	defer func() {
		if e := recover(); e != nil {
			if e != http.ErrAbortHandler {
				st.sc.m.log.Error("http2 handler panic", "panic", e)
			}
			ok = false
		}
	}()
	st.handler(&st.w, st.req)
	return true
}

// h2sBody is a request body fed by the read loop.
type h2sBody struct {
	st            *h2sStream
	req           *http.Request
	mu            sync.Mutex
	cond          sync.Cond
	buf           []byte
	r             int
	err           error       // io.EOF at the end; set once
	closed        bool        // the handler closed it
	trailer       http.Header // declared trailers, received with the end
	needsContinue atomic.Bool
	timer         *time.Timer
}

func (b *h2sBody) Read(p []byte) (int, error) {
	if b.needsContinue.Load() && b.needsContinue.CompareAndSwap(true, false) {
		b.st.w.sendContinue()
	}
	b.mu.Lock()
	for b.r == len(b.buf) && b.err == nil {
		b.cond.Wait()
	}
	if b.r < len(b.buf) && len(p) > 0 {
		n := copy(p, b.buf[b.r:])
		b.r += n
		if b.r == len(b.buf) {
			b.r = 0
			b.buf = b.buf[:0]
			if cap(b.buf) > 64<<10 {
				b.buf = nil
			}
		}
		b.mu.Unlock()
		b.st.sc.credit(b.st, int64(n), true)
		return n, nil
	}
	err := b.err
	if b.r < len(b.buf) {
		err = nil
	}
	if err == io.EOF && b.trailer != nil {
		for k, v := range b.trailer {
			b.req.Trailer[k] = v
		}
		b.trailer = nil
	}
	b.mu.Unlock()
	return 0, err
}

func (b *h2sBody) Close() error {
	b.mu.Lock()
	n := len(b.buf) - b.r
	b.buf, b.r, b.closed = nil, 0, true
	if b.err == nil {
		b.err = http.ErrBodyReadAfterClose
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	if n > 0 {
		b.st.sc.credit(b.st, int64(n), true)
	}
	return nil
}

// push appends data; false when the handler closed the body.
func (b *h2sBody) push(data []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return false
	}
	b.buf = append(b.buf, data...)
	b.cond.Broadcast()
	return true
}

// end marks the body complete; tr: its trailers (nil: none).
func (b *h2sBody) end(tr http.Header) {
	b.mu.Lock()
	if b.err == nil {
		b.err = io.EOF
		if tr != nil && b.req.Trailer != nil {
			b.trailer = tr
		} else {
			b.trailer = nil
		}
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

// fail ends reads with err, unless the body already ended.
func (b *h2sBody) fail(err error) {
	b.mu.Lock()
	if b.err == nil || (b.err == io.EOF && b.r < len(b.buf) && err != errH2StreamClosed) {
		b.err = err
		b.buf, b.r = nil, 0
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

// drop discards the unread bytes of a stream that ended, returning how
// many (for the connection window). Called with sc.mu held.
func (b *h2sBody) drop() int64 {
	b.mu.Lock()
	n := int64(len(b.buf) - b.r)
	b.buf, b.r = nil, 0
	if b.err == nil || b.err == io.EOF {
		b.err = errH2StreamClosed
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	return n
}

// setDeadline fails reads after t (http.ResponseController's
// SetReadDeadline: the request timeout unblocks a stuck body read).
func (b *h2sBody) setDeadline(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if t.IsZero() {
		return
	}
	if d := time.Until(t); d > 0 {
		b.timer = time.AfterFunc(d, func() { b.fail(os.ErrDeadlineExceeded) })
		return
	}
	if b.err == nil {
		b.err = os.ErrDeadlineExceeded
		b.cond.Broadcast()
	}
}
