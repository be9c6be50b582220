package hcm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/h1head"
	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// The lean HTTP/1.1 path. Profile (running sidecars under fortio, strace):
// for every request net/http's server starts a goroutine that reads ahead
// to notice a client hang-up, then wakes it and waits for it when the
// handler returns: two extra park/wake cycles and a wasted read syscall,
// on a path whose only inherent blocking points are "next request" and
// "upstream response". serveFast runs keep-alive HTTP/1.1 requests, with
// or without a body, on the connection's goroutine with its own buffers,
// and watches for a hang-up only when a request is still running after
// watchDelay (and its body was read). Every request head is checked here
// against RFC 9112's framing rules that net/http relaxes (framingError).
// The first request it does not take (Upgrade, CONNECT, HTTP/1.0, an
// Expect other than 100-continue, declared trailers, a head over 4 KiB,
// anything it cannot parse) goes to net/http, which gets every byte read
// so far replayed and closes the connection after that response, so no
// later head escapes the check.

// watchDelay is how long a request runs before its connection is watched
// for a client hang-up (Envoy notices at once; a short request needs no
// watcher at all). 5 ms started watchers for most requests of a saturated
// sidecar pair (p50 ~7 ms) and cost ~10% CPU per request there; a hang-up
// is now noticed within 25 ms.
const watchDelay = 25 * time.Millisecond

// bufferBeforeChunking: a response no longer than this that the handler
// finishes without flushing gets a Content-Length (as net/http does).
const bufferBeforeChunking = 2048

// fastConn is the lean path's per-connection state.
type fastConn struct {
	m      *Manager
	cc     *conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	base   context.Context
	w      *fastWriter // in bufs, while serving
	seen   []byte      // bytes of the current head, replayed on fallback (in bufs)
	// bufs hold br, bw, seen and the response writer's header and buffer
	// while the connection serves a request; an idle connection gives
	// them back to fastPool (issue 18: idle connections cost 24 KB of Go
	// memory each with their own).
	bufs *fastBufs
	src  fastSrc
	raw  syscall.RawConn // the socket, for waiting without a buffer
	// sio reads and writes the socket directly (nil: through cc), once
	// nothing above it buffers.
	sio *sockio.Conn
	// waited: the readiness callback already checked the socket once.
	waited bool
	// held: the last response is held in sio (hold.go), written by the
	// wait for the next request; heldErr is how that write ended.
	held     bool
	heldErr  syscall.Errno
	readyFn  func(uintptr) bool
	deadline bool      // a read deadline is set for the head
	waitEnd  time.Time // when the current wait for a request times out (0: never)
	body     *fastBody // the current request's body, nil when none

	// state: fastIdle (waiting for a request), fastBusy (from its first
	// byte), fastClosed (drained); stateMu orders drain against a request
	// arriving.
	stateMu sync.Mutex
	state   int32
	// sock is the socket once known (see raw), for drain's check.
	sock atomic.Pointer[rawSock]
	pk   parking // while idle without a goroutine (park.go)

	// Hang-up watcher of the current request.
	watchT   *time.Timer
	mu       sync.Mutex
	inflight bool
	watched  bool // a watcher ran for this request (a stale timer callback may fire too)
	watching bool
	cancel   context.CancelCauseFunc
	watchWG  sync.WaitGroup // the watcher's read, waited for after the request
}

const (
	fastIdle int32 = iota
	fastBusy
	fastClosed
)

// drain closes the connection if it is waiting for a request; a busy one
// closes after its response (the loop sees Manager.closing). An idle
// connection whose next request is already in the socket is left to
// serve it: closing would reset it under the client (issue 18).
func (fc *fastConn) drain() {
	fc.stateMu.Lock()
	defer fc.stateMu.Unlock()
	if fc.state != fastIdle {
		return
	}
	if rs := fc.sock.Load(); rs != nil && rs.pending() {
		return
	}
	fc.state = fastClosed
	fc.cc.Close()
	fc.unpark()
}

// begin marks the connection busy when a request arrives; false when it
// was drained meanwhile.
func (fc *fastConn) begin() bool {
	fc.stateMu.Lock()
	defer fc.stateMu.Unlock()
	if fc.state == fastClosed {
		return false
	}
	fc.state = fastBusy
	return true
}

func (fc *fastConn) end() {
	fc.stateMu.Lock()
	if fc.state == fastBusy {
		fc.state = fastIdle
	}
	fc.stateMu.Unlock()
}

// rawSock is a connection's socket.
type rawSock struct {
	rc  syscall.RawConn
	buf [1]byte
	mu  sync.Mutex
}

// pending reports whether bytes are waiting in the socket.
func (r *rawSock) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ready := false
	r.rc.Control(func(fd uintptr) { ready = socketReadable(fd, r.buf[:]) })
	return ready
}

func (m *Manager) trackFast(fc *fastConn, add bool) {
	m.fastMu.Lock()
	defer m.fastMu.Unlock()
	if !add {
		delete(m.fast, fc)
		return
	}
	if m.fast == nil {
		m.fast = map[*fastConn]struct{}{}
	}
	m.fast[fc] = struct{}{}
}

func (m *Manager) drainFast() {
	m.fastMu.Lock()
	defer m.fastMu.Unlock()
	for fc := range m.fast {
		fc.drain()
	}
}

// serveFast serves cc until it closes or a request needs net/http.
func (m *Manager) serveFast(cc *conn) {
	fc := &fastConn{m: m, cc: cc, remote: cc.RemoteAddr().String()}
	fc.src.fc = fc
	fc.base = context.WithValue(context.Background(), connKey{}, cc)
	fc.watchT = time.AfterFunc(time.Hour, fc.watch)
	fc.watchT.Stop()
	m.trackFast(fc, true)
	if m.draining.Load() {
		m.trackFast(fc, false)
		cc.Close()
		return
	}
	fc.loop(true, nil)
}

// defaultIdleHandoff is how long a connection waits for its next request on the
// goroutine that served the last one before a fresh goroutine takes over
// the wait. Profile (TestIdleConnectionCost): the serving goroutine's
// stack stays at 4 KiB while it waits below the listener's frames (the GC
// halves a stack only while less than a quarter is used); the fresh one
// waits on 2 KiB. A connection busier than this never hands off, so a
// loaded proxy pays nothing; an idle one pays one goroutine start.
const defaultIdleHandoff = 2 * time.Second

// loop serves requests until the connection is done (closed, released,
// and done called when detached), net/http takes it over, or it hands
// the wait for the next request to a fresh goroutine (fc.idle).
func (fc *fastConn) loop(first bool, done func()) {
	m, cc := fc.m, fc.cc
	for ; ; first = false {
		// Waiting happens here, on a shallow stack the GC can shrink.
		replay, ok := []byte(nil), false
		switch fc.wait(first) {
		case waitHandoff:
			if done == nil {
				done = cc.info.Detach()
			}
			fc.handoff(done)
			return
		case waitReady:
			ok = fc.begin()
		}
		if ok {
			replay, ok = fc.next(first)
			if !fc.held {
				fc.end() // else once the held response is written
			}
			// Drain, or the end of a drain period that came while this
			// request ran: the connection is done.
			ok = ok && !m.draining.Load() && !m.idleClosed.Load()
			if !ok && fc.held {
				fc.flushHeld()
			}
		}
		if replay != nil {
			// net/http takes over, from the first unread byte.
			m.trackFast(fc, false)
			fc.release()
			cc.replay = replay
			m.serveH1(cc)
			break
		}
		if !ok {
			m.trackFast(fc, false)
			fc.release()
			cc.Close()
			break
		}
	}
	if done != nil {
		done()
	}
}

// restackCheck is how often an idle connection whose goroutine started
// with a stack above the minimum looks whether new goroutines start
// smaller now.
const restackCheck = 10 * time.Second

// handoff starts a fresh goroutine to wait for the next request. The
// runtime starts goroutines with the average stack size it saw at the
// last GC, large while connections are busy, and never halves the stack
// of a goroutine parked on a socket below 4 KiB (it needs under a
// quarter in use, its guard area included); so a goroutine that started
// large moves to a fresh one once starting stacks are small again.
func (fc *fastConn) handoff(done func()) {
	if fc.park(done) {
		return
	}
	size := startingStack()
	d := fc.waitEnd
	if size > minStack && (d.IsZero() || time.Until(d) > restackCheck) {
		d = time.Now().Add(restackCheck)
	}
	fc.cc.SetReadDeadline(d)
	fc.deadline = !d.IsZero()
	go fc.idle(done, size)
}

// minStack is the runtime's smallest goroutine stack.
const minStack = 2048

// startingStack is the stack size goroutines start with now.
func startingStack() uint64 {
	s := [1]metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s[:])
	if s[0].Value.Kind() != metrics.KindUint64 {
		return minStack
	}
	return s[0].Value.Uint64()
}

// idle waits for the next request on a goroutine of its own, started with
// a stack of size (the serving goroutine's grew while serving), then
// serves on it.
func (fc *fastConn) idle(done func(), size uint64) {
	defer func() {
		// This goroutine is no longer under the listener's recover.
		if p := recover(); p != nil {
			fc.m.log.Error("panic serving connection", "panic", fmt.Sprint(p))
			fc.m.trackFast(fc, false)
			fc.cc.Close()
			done()
		}
	}()
	for {
		err := fc.await()
		if err == nil {
			break
		}
		if isTimeout(err) && fc.bufs == nil && (fc.waitEnd.IsZero() || time.Now().Before(fc.waitEnd)) {
			if startingStack() < size {
				fc.handoff(done)
				return
			}
			fc.cc.SetReadDeadline(fc.waitEnd) // starting stacks are still large
			if size > minStack && (fc.waitEnd.IsZero() || time.Until(fc.waitEnd) > restackCheck) {
				fc.cc.SetReadDeadline(time.Now().Add(restackCheck))
			}
			continue
		}
		fc.m.trackFast(fc, false)
		fc.release()
		fc.cc.Close()
		done()
		return
	}
	fc.loop(false, done)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// What wait found.
const (
	waitDone    = iota // the connection is done (closed, timed out, drained)
	waitReady          // a request's first byte is here
	waitHandoff        // idle for m.idleHandoff: a fresh goroutine waits on
)

// wait waits for the first byte of the next request (the idle or the
// request headers timeout applies, fc.waitEnd; 0 none); waitHandoff when
// the connection has been idle for m.idleHandoff and the listener lets it
// detach.
func (fc *fastConn) wait(first bool) int {
	m, cc := fc.m, fc.cc
	fc.deadline = false
	now := time.Now()
	fc.waitEnd = time.Time{}
	switch {
	case first && m.h1.ReadHeaderTimeout > 0:
		fc.waitEnd = now.Add(m.h1.ReadHeaderTimeout)
	case !first && m.h1.IdleTimeout > 0:
		fc.waitEnd = now.Add(m.h1.IdleTimeout)
	}
	d := fc.waitEnd
	handoff := cc.info.Detach != nil && (d.IsZero() || d.Sub(now) > m.idleHandoff)
	if handoff {
		d = now.Add(m.idleHandoff)
	}
	if !d.IsZero() {
		cc.SetReadDeadline(d)
		fc.deadline = true
	}
	err := fc.await()
	switch {
	case err == nil:
		return waitReady
	case handoff && isTimeout(err) && fc.bufs == nil:
		return waitHandoff
	}
	return waitDone
}

// next reads and serves one request. It returns the bytes to replay when
// net/http must take over, or ok=false when the connection is done.
func (fc *fastConn) next(first bool) (replay []byte, ok bool) {
	m, cc, br := fc.m, fc.cc, fc.br
	deadline := fc.deadline
	if !first && m.h1.ReadHeaderTimeout > 0 {
		cc.SetReadDeadline(time.Now().Add(m.h1.ReadHeaderTimeout))
		deadline = true
	}
	// Wait for the whole head; it must fit the buffer.
	n := 0
	for {
		n = br.Buffered()
		buf, _ := br.Peek(n)
		if headEnd(buf) > 0 {
			break
		}
		if n >= br.Size() {
			return fc.bigHead()
		}
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && !requestLineOK(buf[:i]) {
			// net/http rejects a bad request line without waiting for
			// the rest of the head (found by FuzzLeanMatchesNetHTTP).
			fc.cc.closeAfter = true
			return fc.keep(n), false
		}
		if _, err := br.Peek(n + 1); err != nil {
			if n = br.Buffered(); n > 0 {
				return fc.keep(n), false // let net/http answer what it can
			}
			return nil, false
		}
	}
	if deadline {
		cc.SetReadDeadline(time.Time{})
	}
	seen := fc.keepRef(n)
	req, lean, bad := leanRequest(br, seen[:headEnd(seen)])
	if bad {
		fc.reject()
		return nil, false
	}
	if !lean {
		cc.closeAfter = true
		return append([]byte(nil), seen...), false
	}
	req.RemoteAddr = fc.remote
	fc.body = nil
	if req.Body == http.NoBody && br.Buffered() == 0 {
		// Issue 17: nothing more to read until the next request (a
		// hang-up watcher takes a buffer of its own).
		fc.dropReader()
	}
	if req.Body != http.NoBody {
		fc.body = &fastBody{fc: fc, rc: req.Body, left: req.ContentLength}
		req.Body = fc.body
		if _, ok := req.Header["Expect"]; ok {
			// Envoy answers 100-continue itself, at once.
			fc.out().WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := fc.out().Flush(); err != nil {
				return nil, false
			}
		}
	}
	ctx, cancel := context.WithCancelCause(fc.base)
	// In place: the request is this connection's own, and WithContext's
	// copy stays on the stack (one allocation, 312 bytes, per request).
	*req = *req.WithContext(ctx)
	fc.mu.Lock()
	fc.inflight, fc.watched, fc.cancel = true, false, cancel
	fc.mu.Unlock()
	fc.watchT.Reset(watchDelay)

	w := fc.w
	w.reset(req)
	w.cancel = cancel
	aborted := fc.serve(w, req)
	bodyDone := fc.endBody()

	fc.mu.Lock()
	fc.inflight, fc.cancel = false, nil
	watching := fc.watching
	fc.watching = false
	fc.mu.Unlock()
	fc.watchT.Stop()
	if watching {
		// The watcher is blocked reading: wake it and wait, so the next
		// head is read by one goroutine only.
		cc.SetReadDeadline(time.Unix(1, 0))
		fc.watchWG.Wait()
		cc.SetReadDeadline(time.Time{})
	}
	// The stream idle timer cancels ctx too (filter.Stream.Cancel); the
	// connection stays.
	gone := ctx.Err() != nil && context.Cause(ctx) != filter.ErrStreamIdle
	cancel(nil)
	if aborted || gone {
		if aborted {
			fc.out().Flush() // what the handler wrote before the reset
		}
		return nil, false
	}
	keep := w.finish()
	w.recycle()
	if keep && bodyDone && fc.holdable() && fc.hold() {
		return nil, true
	}
	// Close only what the response said it closes: a drain that began after
	// the head went out is told by the next response.
	if err := fc.out().Flush(); err != nil || !keep || !bodyDone {
		return nil, false
	}
	return nil, true
}

// fastBufs are what a connection holds while it serves requests. The
// read and write buffers are not among them: the write buffer is taken
// when the response starts (out), and a request without a body gives the
// read buffer back once its head is parsed (dropReader), so a request
// waiting for its upstream holds neither.
type fastBufs struct {
	seen   []byte
	header http.Header
	w      fastWriter
}

var fastPool = sync.Pool{New: func() any {
	return &fastBufs{header: make(http.Header, 16)}
}}

// inPool holds the request read buffers.
var inPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// outPool holds the response write buffers (see out).
var outPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// out is the connection's write buffer, taken from outPool on the first
// write after the buffers were acquired. Issue 17: with 200 connections
// whose requests all wait for their upstream at once (the bench's
// tail-h1-200c cell), 4 KiB each held unwritten was 0.8 MB of live heap
// per proxy, twice that in RSS with the GC's headroom.
func (fc *fastConn) out() *bufio.Writer {
	if fc.bw == nil {
		bw := outPool.Get().(*bufio.Writer)
		if fc.sio != nil {
			bw.Reset(fc.sio)
		} else {
			bw.Reset(fc.cc)
		}
		fc.bw = bw
	}
	return fc.bw
}

// fastSrc is what br reads: the connection, after a byte read while
// waiting without buffers (when the socket cannot be polled).
type fastSrc struct {
	fc      *fastConn
	one     [1]byte
	pending bool
}

func (s *fastSrc) Read(p []byte) (int, error) {
	if s.pending && len(p) > 0 {
		s.pending = false
		p[0] = s.one[0]
		return 1, nil
	}
	if s.fc.sio != nil && s.fc.unbuffered() {
		return s.fc.sio.Read(p)
	}
	return s.fc.cc.Read(p)
}

// await waits for the next request's first byte and makes sure the
// buffers are held; an error when the connection is done or the read
// deadline passed. Between requests the buffers go back to the pool.
func (fc *fastConn) await() error {
	if fc.br != nil && fc.br.Buffered() > 0 {
		return nil // pipelined
	}
	if fc.held {
		return fc.awaitHeld()
	}
	fc.release()
	if fc.raw == nil && fc.unbuffered() {
		if fc.raw = rawConnOf(fc.cc.Conn); fc.raw != nil {
			fc.sio = sockio.New(tcpOf(fc.cc.Conn))
			fc.readyFn = fc.ready
			fc.sock.Store(&rawSock{rc: fc.raw})
		}
	}
	switch {
	case fc.src.pending:
		// The hang-up watcher read the first byte already.
	case fc.raw != nil && fc.unbuffered():
		fc.waited = false
		if err := fc.raw.Read(fc.readyFn); err != nil {
			return err
		}
	default:
		// Wrapped or TLS connection: one byte, without a buffer.
		for {
			n, err := fc.cc.Read(fc.src.one[:])
			if n == 1 {
				break
			}
			if err != nil {
				return err
			}
		}
		fc.src.pending = true
	}
	fc.acquire()
	_, err := fc.br.Peek(1)
	return err
}

// ready is the raw read callback: the first call checks the socket
// without consuming (EAGAIN: wait for the poller), the call after a
// wakeup trusts it.
func (fc *fastConn) ready(fd uintptr) bool {
	if fc.waited {
		return true
	}
	fc.waited = true
	if fc.held {
		return fc.writeHeld(fd)
	}
	return socketReadable(fd, fc.src.one[:])
}

// unbuffered: no byte is held above the socket (replay, sniffing).
func (fc *fastConn) unbuffered() bool {
	cc := fc.cc
	if cc.r != nil && cc.r.Buffered() == 0 {
		cc.r = nil // the sniffing buffer, drained: an idle connection holds none
	}
	return len(cc.replay) == 0 && (cc.r == nil || cc.r.Buffered() == 0) && !fc.src.pending
}

func (fc *fastConn) acquire() {
	fc.reader()
	if fc.bufs != nil {
		return
	}
	b := fastPool.Get().(*fastBufs)
	b.w.fc = fc
	fc.bufs, fc.seen, fc.w = b, b.seen, &b.w
}

// reader is the connection's read buffer, taken from inPool when it has
// none.
func (fc *fastConn) reader() *bufio.Reader {
	if fc.br == nil {
		br := inPool.Get().(*bufio.Reader)
		br.Reset(&fc.src)
		fc.br = br
	}
	return fc.br
}

// dropReader gives the read buffer back while a request is served; it
// must hold nothing.
func (fc *fastConn) dropReader() {
	if fc.br != nil {
		fc.br.Reset(nil)
		inPool.Put(fc.br)
		fc.br = nil
	}
}

// release gives the buffers back; br and bw must hold nothing.
func (fc *fastConn) release() {
	fc.dropReader()
	b := fc.bufs
	if b == nil {
		return
	}
	if fc.bw != nil {
		fc.bw.Reset(nil)
		outPool.Put(fc.bw)
	}
	clear(b.header)
	b.seen = fc.seen[:0]
	if cap(b.seen) > 8192 {
		b.seen = nil
	}
	b.w = fastWriter{buf: b.w.buf[:0]} // not the last request, its context and headers
	fc.bufs, fc.bw, fc.seen, fc.w = nil, nil, nil, nil
	fastPool.Put(b)
}

// keep copies the first n buffered bytes for replay.
func (fc *fastConn) keep(n int) []byte {
	b, _ := fc.br.Peek(n)
	return append([]byte(nil), b...)
}

// bigHead reads a head longer than the buffer (up to net/http's limit),
// checks its framing and hands it with the connection to net/http.
func (fc *fastConn) bigHead() (replay []byte, ok bool) {
	br := fc.br
	limit := fc.m.h1.MaxHeaderBytes + 4096
	var buf []byte
	for {
		b, _ := br.Peek(br.Buffered())
		buf = append(buf, b...)
		br.Discard(len(b))
		if end := headEnd(buf); end > 0 {
			if framingError(buf[:end]) != "" {
				fc.reject()
				return nil, false
			}
			break
		}
		if len(buf) > limit {
			break // net/http answers 431
		}
		if _, err := br.Peek(1); err != nil {
			break
		}
	}
	fc.cc.closeAfter = true
	return buf, false
}

// reject answers a request whose framing is in doubt the way net/http
// answers one it cannot parse, and the connection closes.
func (fc *fastConn) reject() {
	fc.out().WriteString("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")
	fc.out().Flush()
}

// requestLineOK: the line has net/http's shape "METHOD SP target SP
// HTTP/x.y" with a token method, so its parser will read the headers.
func requestLineOK(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(method) == 0 {
		return false
	}
	for _, c := range method {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	target, proto, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return false
	}
	if _, _, ok = http.ParseHTTPVersion(string(proto)); !ok {
		return false
	}
	uri := string(target)
	if string(method) == http.MethodConnect && !strings.HasPrefix(uri, "/") {
		uri = "http://" + uri // authority form, as net/http reads it
	}
	_, err := url.ParseRequestURI(uri)
	return err == nil
}

// framingError checks a request head against the RFC 9112 framing rules
// net/http relaxes: an obs-fold line (§5.2: rejected, not folded) and
// Content-Length together with Transfer-Encoding (§6.1, §6.3: the mark of
// request smuggling; net/http drops the Content-Length and serves it).
// "" when the head is fine.
func framingError(head []byte) string {
	cl, te := false, false
	i := bytes.IndexByte(head, '\n') + 1 // past the request line
	for i > 0 && i < len(head) {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			break
		}
		line := head[i : i+j]
		i += j + 1
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "obs-fold"
		}
		name, _, _ := bytes.Cut(line, []byte{':'})
		switch {
		case asciiEqualFold(name, "content-length"):
			cl = true
		case asciiEqualFold(name, "transfer-encoding"):
			te = true
		}
	}
	if cl && te {
		return "content-length and transfer-encoding"
	}
	return ""
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i]|0x20 != s[i] {
			return false
		}
	}
	return true
}

// fastBody is a lean-path request body. The connection takes it back
// when the handler returns (endBody): later reads (a transport still
// writing a failed attempt) fail instead of reading the next request.
type fastBody struct {
	fc     *fastConn
	rc     io.ReadCloser // net/http's framing reader (length or chunked)
	mu     sync.Mutex
	closed bool
	eof    atomic.Bool
	// left is what a Content-Length body still holds (-1: chunked). A
	// transport reads exactly that much and never asks for the EOF, so
	// the end is counted rather than waited for.
	left int64
}

func (b *fastBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.rc.Read(p)
	if b.left > 0 {
		if b.left -= int64(n); b.left == 0 && err == nil {
			err = io.EOF
		}
	}
	if err == io.EOF && !b.eof.Load() {
		b.eof.Store(true)
		b.fc.watchT.Reset(watchDelay) // the hang-up watcher may read now
	}
	return n, err
}

// Close is a no-op: the connection ends the body after the handler.
func (b *fastBody) Close() error { return nil }

// endBody takes the body back after the handler; false when it was not
// read to its end and what is left is not already buffered (the
// connection cannot be reused then).
func (fc *fastConn) endBody() bool {
	b := fc.body
	if b == nil {
		return true
	}
	if b.eof.Load() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		return true
	}
	// A read waiting for the client (a transport still sending) fails
	// at once; then only what is buffered is discarded.
	fc.cc.SetReadDeadline(time.Unix(1, 0))
	b.mu.Lock()
	b.closed = true
	_, err := io.Copy(io.Discard, b.rc)
	b.mu.Unlock()
	fc.cc.SetReadDeadline(time.Time{})
	return err == nil
}

// keepRef copies the first n buffered bytes into the connection's scratch
// buffer (no allocation per request), valid until the next head.
func (fc *fastConn) keepRef(n int) []byte {
	b, _ := fc.br.Peek(n)
	fc.seen = append(fc.seen[:0], b...)
	return fc.seen
}

// serve runs the handler; true when it aborted the stream (panic).
func (fc *fastConn) serve(w *fastWriter, req *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				fc.m.log.Error("http handler panic", "panic", fmt.Sprint(p))
			}
		}
	}()
	fc.m.ServeHTTP(w, req)
	return false
}

// watch runs when a request outlives watchDelay: it reads ahead (keeping
// the bytes) and cancels the request if the client hung up.
func (fc *fastConn) watch() {
	fc.mu.Lock()
	if !fc.inflight || fc.watched {
		fc.mu.Unlock()
		return
	}
	if b := fc.body; b != nil && !b.eof.Load() {
		// The body is still being read (a hang-up fails that read);
		// its end re-arms the timer.
		fc.mu.Unlock()
		return
	}
	fc.watched, fc.watching = true, true
	fc.watchWG.Add(1)
	cancel := fc.cancel
	fc.mu.Unlock()
	// The serving goroutine waits for this read (watchWG) before it
	// touches the reader again. A request that gave its read buffer back
	// is watched on the socket itself, or (TLS) by reading one byte,
	// without one.
	if fc.br == nil {
		if fc.raw != nil && hungUp(fc.raw) || fc.raw == nil && fc.hungUpOne() {
			cancel(nil)
		}
		fc.watchWG.Done()
		return
	}
	_, err := fc.reader().Peek(1)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		cancel(nil) // EOF or reset: the client is gone
	}
	fc.watchWG.Done()
}

// headEnd returns the length of the request head in b (through the empty
// line), or 0 when it is incomplete.
func headEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return 0
}

// hostFields counts the Host fields of a request head (net/http answers
// 400 unless there is exactly one, with a valid value, even when the
// target is an absolute URI); an invalid value counts as none.
func hostFields(head []byte) int {
	n := 0
	for i := 0; i < len(head); i++ {
		if head[i] != '\n' || len(head)-i < 6 {
			continue
		}
		f := head[i+1 : i+6]
		if (f[0]|0x20) == 'h' && (f[1]|0x20) == 'o' && (f[2]|0x20) == 's' && (f[3]|0x20) == 't' && f[4] == ':' {
			v := head[i+6:]
			if j := bytes.IndexByte(v, '\n'); j >= 0 {
				v = v[:j]
			}
			if !validHost(bytes.Trim(v, " \t\r")) {
				return 0
			}
			n++
		}
	}
	return n
}

// validHost is net/http's rule for the Host value (the conversion stays
// on the stack for the usual short hosts).
func validHost(v []byte) bool { return httpguts.ValidHostHeader(string(v)) }

// fastRequest: the requests the lean path serves, of those net/http
// parsed.
func fastRequest(r *http.Request) bool {
	if !leanShape(r) {
		return false
	}
	// net/http's server checks what textproto lets through (400).
	for k, vs := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// leanShape: the method, version, host and fields of a request the lean
// path serves; the field syntax is checked by the parser (h1head) or by
// fastRequest.
func leanShape(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Method == http.MethodConnect || r.Method == "PRI" {
		return false
	}
	h := r.Header
	if r.Host == "" || !httpguts.ValidHostHeader(r.Host) {
		return false // net/http answers 400
	}
	for _, k := range [...]string{"Upgrade", "Http2-Settings"} {
		if _, ok := h[k]; ok {
			return false
		}
	}
	if len(r.Trailer) > 0 {
		return false // declared trailers: net/http forwards them
	}
	if e, ok := h["Expect"]; ok && (len(e) != 1 || !strings.EqualFold(e[0], "100-continue") || r.Body == http.NoBody) {
		return false // net/http answers 417, or ignores it
	}
	return true
}

// fastWriter is the lean path's http.ResponseWriter, reused per request.
type fastWriter struct {
	fc      *fastConn
	req     *http.Request
	cancel  context.CancelCauseFunc // the request's context, for filter.Stream.Cancel
	header  http.Header
	status  int
	wrote   bool // final status set
	sent    bool // head written to the connection
	chunked bool
	cl      int64 // declared length, -1 none
	n       int64 // body bytes written
	buf     []byte
	close   bool
	flushed bool
	adopted bool // header is an upstream response's map (AdoptHeader)
}

var (
	_ http.Flusher         = (*fastWriter)(nil)
	_ filter.HeaderAdopter = (*fastWriter)(nil)
)

func (w *fastWriter) reset(r *http.Request) {
	b := w.fc.bufs
	clear(b.header)
	*w = fastWriter{fc: w.fc, req: r, header: b.header, cl: -1, buf: w.buf[:0], close: r.Close}
}

func (w *fastWriter) Header() http.Header { return w.header }

// AdoptHeader makes h the response's header map while the response has
// not started and the writer's own map is empty; the pooled map stays
// in the connection's buffers for the next request.
func (w *fastWriter) AdoptHeader(h http.Header) bool {
	if w.wrote || h == nil || len(w.header) > 0 {
		return false
	}
	w.header, w.adopted = h, true
	return true
}

// recycle gives an adopted header map back once the response is written.
func (w *fastWriter) recycle() {
	if w.adopted {
		h1head.PutHeader(w.header)
		w.header, w.adopted = w.fc.bufs.header, false
	}
}

// SetReadDeadline lets http.ResponseController end a body read stuck on
// a silent client (filter.BodyUnblocker).
func (w *fastWriter) SetReadDeadline(t time.Time) error { return w.fc.cc.SetReadDeadline(t) }

// EnableFullDuplex: the lean path always reads the body and writes the
// response independently.
func (w *fastWriter) EnableFullDuplex() error { return nil }

func (w *fastWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 {
		// Interim response: out at once, with the current headers.
		bw := w.fc.out()
		writeStatus(bw, code)
		w.writeFields(nil)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wrote, w.status = true, code
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

// bodyAllowed: the status and method allow a body.
func (w *fastWriter) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified && w.req.Method != http.MethodHead
}

func (w *fastWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.n+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.n += int64(len(p))
	if !w.sent {
		if len(w.buf)+len(p) <= bufferBeforeChunking {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.sendHead(false)
	}
	return len(p), w.body(p)
}

// body writes p as it is framed.
func (w *fastWriter) body(p []byte) error {
	bw := w.fc.out()
	if len(p) == 0 {
		return nil
	}
	if w.chunked {
		var hx [16]byte
		bw.Write(strconv.AppendInt(hx[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return err
	}
	_, err := bw.Write(p)
	return err
}

func (w *fastWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHead(false)
	}
	w.flushed = true
	w.fc.out().Flush()
}

// sendHead writes the status line and headers, choosing the framing, and
// the body buffered so far.
func (w *fastWriter) sendHead(final bool) {
	w.sent = true
	h := w.header
	allowed := w.bodyAllowed()
	trailers := h["Trailer"] != nil || hasTrailerPrefix(h)
	if w.cl < 0 && final && !trailers && w.status != http.StatusNoContent && w.status != http.StatusNotModified &&
		(w.req.Method != http.MethodHead || len(w.buf) > 0) {
		w.cl = int64(len(w.buf))
		h["Content-Length"] = []string{strconv.Itoa(len(w.buf))}
	}
	w.chunked = allowed && w.cl < 0
	if !w.close && (w.fc.m.closing() || hasToken(h["Connection"], "close")) {
		w.close = true
	}
	bw := w.fc.out()
	writeStatus(bw, w.status)
	if _, ok := h["Date"]; !ok {
		var d [64]byte
		bw.WriteString("Date: ")
		bw.Write(time.Now().UTC().AppendFormat(d[:0], http.TimeFormat))
		bw.WriteString("\r\n")
	}
	_, haveType := h["Content-Type"]
	if !haveType && allowed && len(w.buf) > 0 && h.Get("Content-Encoding") == "" && !trailers {
		bw.WriteString("Content-Type: ")
		bw.WriteString(http.DetectContentType(w.buf))
		bw.WriteString("\r\n")
	}
	w.writeFields(nil)
	if w.close {
		bw.WriteString("Connection: close\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.buf) > 0 {
		w.body(w.buf)
	}
}

// writeFields writes the header map (or the trailers when trailer is set)
// in sorted order, dropping invalid names and fields the framing owns.
func (w *fastWriter) writeFields(trailer []string) {
	bw := w.fc.out()
	var arr [48]string
	keys := arr[:0]
	if trailer != nil {
		keys = append(keys, trailer...)
	} else {
		for k := range w.header {
			switch {
			case k == "Transfer-Encoding" || strings.HasPrefix(k, http.TrailerPrefix):
				continue
			case k == "Connection" && w.close:
				continue
			}
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		vs := w.header[k]
		if trailer != nil && vs == nil {
			vs = w.header[http.TrailerPrefix+k]
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(cleanField(v))
			bw.WriteString("\r\n")
		}
	}
}

// cleanField turns CR and LF into spaces and trims blanks (net/http's
// header writer does the same).
func cleanField(v string) string {
	clean := len(v) == 0 || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
	for i := 0; clean && i < len(v); i++ {
		clean = v[i] != '\r' && v[i] != '\n'
	}
	if clean {
		return v // profile: most values; strings.ContainsAny and Trim were 1.3% of the proxy
	}
	if strings.ContainsAny(v, "\r\n") {
		v = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, v)
	}
	return strings.Trim(v, " \t")
}

// finish ends the response; false when the connection cannot be reused.
func (w *fastWriter) finish() bool {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHead(true)
	}
	if w.chunked {
		bw := w.fc.out()
		bw.WriteString("0\r\n")
		if t := w.trailerKeys(); len(t) > 0 {
			w.writeFields(t)
		}
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.n < w.cl && w.bodyAllowed() {
		return false // short body: the client would wait for the rest
	}
	return !w.close
}

// trailerKeys are the declared trailers and the TrailerPrefix ones.
func (w *fastWriter) trailerKeys() []string {
	var keys []string
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" && w.header[k] != nil {
				keys = append(keys, k)
			}
		}
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			keys = append(keys, strings.TrimPrefix(k, http.TrailerPrefix))
		}
	}
	return keys
}

func hasTrailerPrefix(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func writeStatus(bw *bufio.Writer, code int) {
	if code >= 100 && code < len(statusLines) {
		bw.WriteString(statusLines[code])
		return
	}
	writeStatusSlow(bw, code)
}

// writeStatusSlow formats the status line of code.
func writeStatusSlow(bw *bufio.Writer, code int) {
	var b [8]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	if t := http.StatusText(code); t != "" {
		bw.WriteString(t)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// statusLines are the status lines of codes 100-599, as writeStatus
// formats them (profile: formatting the code put its buffer on the heap,
// 0.65 allocations per response).
var statusLines = func() (lines [600]string) {
	// One small writer for all: a 4 KiB bufio buffer per code was 2 MB of
	// start-up garbage, 0.6 MiB of an idle proxy's RSS.
	var b bytes.Buffer
	bw := bufio.NewWriterSize(&b, 64)
	for code := 100; code < len(lines); code++ {
		b.Reset()
		writeStatusSlow(bw, code)
		bw.Flush()
		lines[code] = b.String()
	}
	return
}()

func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}
