package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// HTTP/1.1 connection pool with Envoy's circuit-breaking semantics: a
// request takes an idle connection, else opens one while the cluster is
// under max_connections, else waits as pending (up to max_pending_requests)
// until a connection is released, else overflows (503 UO).

type h1conn struct {
	h      *host
	nc     net.Conn
	local  string        // local address, for Attempt
	remote string        // resolved upstream address, for Attempt of name-based hosts
	br     *bufio.Reader // nil while idle in the pool (park)
	bw     *bufio.Writer // nil while idle in the pool
	rd     io.Reader     // what br reads
	out    sentWriter    // under bw: counts what reached the socket
	sio    *sockio.Conn  // the socket written directly, nil when not possible
	peek   *peeker       // looks for a close while idle; nil when unsupported
	tls    bool
	// verified is the connection's TLS state when the cluster verified the
	// upstream's certificate (nil otherwise); responses carry it as TLS.
	verified *tls.ConnectionState
	uses     int
	since    time.Time // idle since
	// poison makes pending I/O fail when the request context ends; built
	// once per connection, as is the watch that calls it (ctxwatch.go)
	// and its stop.
	poison    func()
	watch     *ctxWatch
	stopWatch func() bool
	// bodyEOF: the current request's body was read to the end.
	bodyEOF atomic.Bool
	// unsent holds the request body read before any byte of the request
	// reached the socket, so a request that never left can be resent;
	// unsentOver: more than maxUnsent was read that way.
	unsent     []byte
	unsentOver bool
}

// maxUnsent bounds the body kept for resending a request that never left
// (bufio sends the first 4 KiB before reading on, so it is rarely reached).
const maxUnsent = 16 << 10

// sentWriter counts the bytes written to the connection, so a failed
// exchange can tell whether any byte of the request left.
type sentWriter struct {
	nc net.Conn
	w  io.Writer // nc, or its socket written directly (sockio)
	n  int64
}

func (w *sentWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom keeps the socket's own ReadFrom (splice, larger writes) for
// bodies; bufio calls it only once its buffer is flushed.
func (w *sentWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.nc.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		w.n += n
		return n, err
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// eofBody records that a request body was read to its end, and keeps what
// was read before anything was sent.
type eofBody struct {
	io.ReadCloser
	c *h1conn
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Body reads and socket writes happen on the writer goroutine, so
	// out.n needs no synchronisation here.
	if c := b.c; n > 0 && c.out.n == 0 && !c.unsentOver {
		if len(c.unsent)+n > maxUnsent {
			c.unsentOver = true
		} else {
			c.unsent = append(c.unsent, p[:n]...)
		}
	}
	if err == io.EOF {
		b.c.bodyEOF.Store(true)
	}
	return n, err
}

// idleClosed reports whether the upstream closed c, or broke HTTP framing
// by sending unasked bytes, while it sat in the pool: the check Go's
// transport (background read) and Envoy (read events on idle connections)
// make, done here with one non-blocking peek when the connection is taken.
func (c *h1conn) idleClosed() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	switch c.peek.peek() {
	case peekIdle:
		return false
	case peekClosed:
		return true
	}
	if !c.tls {
		return true
	}
	// Over TLS the waiting bytes may be a session ticket (alive) or a
	// close_notify: let TLS process them without blocking. A timeout is
	// not sticky in crypto/tls, so the connection stays usable.
	c.nc.SetReadDeadline(time.Unix(1, 0))
	_, err := c.br.Peek(1)
	c.nc.SetReadDeadline(time.Time{})
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// recentUse: a pooled connection idle for less than this is taken for a
// request without a body without the idle check's peek. Profile (sidecar
// pair, 64 connections): the peek was one system call in seven and 2% of
// the proxy's CPU, on connections idle for a few milliseconds. A server
// closes a kept-alive connection after its idle timeout (seconds: Node
// 5 s, nginx 75 s, Envoy 1 h), so one used this recently was closed, if
// at all, by a shutdown or a request limit, and a request without a body
// that meets such a close is resent on a fresh connection (roundTripH1)
// as before. Requests with a body, which cannot always be resent, are
// still checked.
const recentUse = 100 * time.Millisecond

type connResult struct {
	c   *h1conn
	err error
}

type waiter struct {
	ch chan connResult // buffered 1
}

// getH1 returns a connection for one request; reused tells whether it
// served requests before (a stale keep-alive connection may then fail).
// fresh skips idle connections (a retry after a dead one).
//
// bodiless skips the idle check (a peek) of a connection idle for less
// than recentUse: see recentUse.
func (h *host) getH1(ctx context.Context, fresh, bodiless bool) (c *h1conn, reused bool, err error) {
	sh := h.sh
	h.mu.Lock()
	for !fresh && len(h.idle) > 0 && !h.closed {
		c = h.idle[len(h.idle)-1]
		h.idle = h.idle[:len(h.idle)-1]
		idle := sh.opts.Clock.Now().Sub(c.since)
		expired := sh.cfg.idleTimeout > 0 && idle > sh.cfg.idleTimeout
		if !expired {
			h.mu.Unlock()
			c.unpark()
			if (bodiless && idle < recentUse) || !c.idleClosed() {
				return c, true, nil
			}
			sh.stats.UpstreamCxIdleClosed.Add(1)
			h.mu.Lock()
		}
		// Expired or closed by the upstream: its slot is ours to reuse.
		h.conns--
		h.mu.Unlock()
		c.closeConn()
		c = nil
		h.mu.Lock()
	}
	if h.closed {
		h.mu.Unlock()
		return nil, false, connectFailure(errHostClosed)
	}
	// Envoy: even over max_connections, a host chosen by the load balancer
	// gets at least one connection.
	if sh.reserveConnOr(h.conns == 0) {
		h.conns++
		h.mu.Unlock()
		c, err := h.dialH1(ctx)
		if err != nil {
			h.dialFailed()
			return nil, false, connectFailure(err)
		}
		return c, false, nil
	}
	sh.stats.UpstreamCxOverflow.Add(1)
	if !tryAcquire(&sh.stats.UpstreamRqPendingActive, sh.cfg.maxPending) {
		h.mu.Unlock()
		sh.stats.UpstreamRqPendingOverflow.Add(1)
		return nil, false, overflow()
	}
	sh.stats.UpstreamRqPendingTotal.Add(1)
	w := &waiter{ch: make(chan connResult, 1)}
	h.waiters = append(h.waiters, w)
	h.mu.Unlock()
	select {
	case r := <-w.ch:
		if r.err != nil {
			return nil, false, connectFailure(r.err)
		}
		return r.c, r.c.uses > 0, nil
	case <-ctx.Done():
		h.mu.Lock()
		for i, x := range h.waiters {
			if x == w {
				h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
				sh.stats.UpstreamRqPendingActive.Add(-1)
				h.mu.Unlock()
				return nil, false, ctx.Err()
			}
		}
		h.mu.Unlock()
		// A connection is on its way to us: hand it back when it arrives.
		go func() {
			if r := <-w.ch; r.c != nil {
				h.putH1(r.c, true)
			}
		}()
		return nil, false, ctx.Err()
	}
}

func (h *host) dialH1(ctx context.Context) (*h1conn, error) {
	nc, err := h.dial(ctx, alpnH1)
	if err != nil {
		return nil, err
	}
	var rw io.ReadWriter = nc
	sio := sockio.New(nc)
	if sio != nil {
		rw = sio
	}
	c := &h1conn{h: h, nc: nc, rd: rw, local: nc.LocalAddr().String(), remote: h.addr,
		peek: newPeeker(nc), tls: h.tls != nil, verified: verifiedState(h.tls, nc)}
	c.out.nc, c.out.w = nc, rw
	c.sio = sio
	c.unpark()
	c.poison = func() { nc.SetDeadline(time.Unix(1, 0)) }
	c.watch = newCtxWatch(c.poison)
	c.stopWatch = c.watch.stop
	if h.resolve {
		c.remote = nc.RemoteAddr().String()
	}
	return c, nil
}

// Buffers of idle connections (issue 17): a connection gives its read and
// write buffers back when it goes idle in the pool and takes them again
// when a request takes it, so the pool's idle connections hold none
// (200 idle upstream connections held 1.6 MB of Go heap with them). Only
// a clean exchange parks: the response read to its end, so no body read
// still uses the reader.
var (
	readPool  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writePool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

// park gives the buffers back; false (keeping them) when they hold bytes.
func (c *h1conn) park() bool {
	if c.br.Buffered() > 0 || c.bw.Buffered() > 0 {
		return false
	}
	c.br.Reset(nil)
	c.bw.Reset(nil)
	readPool.Put(c.br)
	writePool.Put(c.bw)
	c.br, c.bw = nil, nil
	return true
}

// unpark takes buffers for the connection if it has none.
func (c *h1conn) unpark() {
	if c.br != nil {
		return
	}
	c.br = readPool.Get().(*bufio.Reader)
	c.br.Reset(c.rd)
	c.bw = writePool.Get().(*bufio.Writer)
	c.bw.Reset(&c.out)
}

// dialFailed undoes the accounting of a connection that never opened and
// lets the next pending request try.
func (h *host) dialFailed() {
	h.sh.stats.UpstreamCxActive.Add(-1)
	h.mu.Lock()
	h.conns--
	h.mu.Unlock()
	h.servePending()
}

// putH1 returns c after a request; reusable says whether the exchange left
// the connection clean (response fully read, no Connection: close).
func (h *host) putH1(c *h1conn, reusable bool) {
	sh := h.sh
	if sh.cfg.maxRequestsPerConn > 0 && c.uses >= sh.cfg.maxRequestsPerConn {
		reusable = false
	}
	h.mu.Lock()
	if reusable && !h.closed {
		if len(h.waiters) > 0 {
			w := h.waiters[0]
			h.waiters = h.waiters[1:]
			sh.stats.UpstreamRqPendingActive.Add(-1)
			h.mu.Unlock()
			w.ch <- connResult{c: c}
			return
		}
		if c.park() {
			c.since = sh.opts.Clock.Now()
			h.idle = append(h.idle, c)
			h.mu.Unlock()
			return
		}
		// Bytes nobody asked for: the framing is broken.
	}
	h.mu.Unlock()
	h.dropH1(c)
	h.servePending()
}

// dropH1 closes c and frees its connection slot.
func (h *host) dropH1(c *h1conn) {
	h.mu.Lock()
	h.conns--
	h.mu.Unlock()
	c.closeConn()
}

// closeConn closes the connection; the caller already uncounted it from
// h.conns.
func (c *h1conn) closeConn() {
	c.nc.Close()
	c.h.connClosed()
}

func (h *host) closeAll(cs []*h1conn) {
	for _, c := range cs {
		c.closeConn()
	}
}

// servePending opens a connection for the oldest pending request when a
// slot is free.
func (h *host) servePending() {
	sh := h.sh
	h.mu.Lock()
	if len(h.waiters) == 0 || h.closed || !sh.reserveConnOr(h.conns == 0) {
		h.mu.Unlock()
		return
	}
	w := h.waiters[0]
	h.waiters = h.waiters[1:]
	sh.stats.UpstreamRqPendingActive.Add(-1)
	h.conns++
	h.mu.Unlock()
	go func() {
		ctx, cancel := context.WithCancel(sh.ctx)
		defer cancel()
		c, err := h.dialH1(ctx)
		if err != nil {
			h.dialFailed()
		}
		w.ch <- connResult{c: c, err: err}
	}()
}

// emptyUA suppresses net/http's default User-Agent: a proxy adds none.
// Shared, never written.
var emptyUA = []string{""}

// noDefaultUA returns req, or when it has no User-Agent a shallow copy
// whose header says so, never mutating the caller's header map (a mirror
// may send the same request concurrently).
func noDefaultUA(req *http.Request) *http.Request {
	if _, ok := req.Header["User-Agent"]; ok {
		return req
	}
	r2 := *req
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		h[k] = v
	}
	h["User-Agent"] = emptyUA
	r2.Header = h
	return &r2
}

// roundTrip sends one request over the connection and reads the response
// head. The caller owns the connection until the body is done; stop
// unregisters the context watch (false: the context ended and the
// connection was poisoned). A request body is written concurrently with
// reading the response, so an early answer (e.g. 413 before the upload
// ends) is seen; wrote then reports the write's outcome.
func (c *h1conn) roundTrip(ctx context.Context, req *http.Request) (resp *http.Response, stop func() bool, wrote <-chan error, err error) {
	c.watch.start(ctx)
	stop = c.stopWatch
	c.out.n = 0
	held := false
	if writeHead(c.bw, req) {
		if held = c.sio != nil; held {
			// The head leaves inside the wait for the response (sockio
			// Hold): no read that finds the socket empty first.
			c.sio.Hold()
		}
		err = c.bw.Flush()
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
	} else if req = noDefaultUA(req); req.Body == nil || req.Body == http.NoBody {
		err = req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
	} else {
		ch := make(chan error, 1)
		wrote = ch
		// Track whether the writer consumed the whole body, so that the
		// response end can tell "upload finishing" from "upload cut short".
		r2 := *req
		c.bodyEOF.Store(false)
		c.unsent, c.unsentOver = c.unsent[:0], false
		r2.Body = &eofBody{ReadCloser: req.Body, c: c}
		req = &r2
		go func() {
			err := req.Write(c.bw)
			if err == nil {
				err = c.bw.Flush()
			}
			ch <- err
		}()
	}
	for {
		resp, err = readResponse(c.br, req)
		if err != nil {
			if held {
				c.out.n -= int64(c.sio.Held()) // never reached the socket
			}
			stop()
			if wrote != nil {
				// Unblock the writer and prefer its error: it came first.
				c.nc.Close()
				if werr := <-wrote; werr != nil {
					err = werr
				}
			}
			return nil, nil, nil, err
		}
		// Skip interim responses except 101 (the connection is upgraded).
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		resp.TLS = c.verified
		return resp, stop, wrote, nil
	}
}

// h1body returns the connection to the pool when the body is done. Close
// may be called concurrently with Read (e.g. on a timeout).
type h1body struct {
	rc       io.ReadCloser
	c        *h1conn
	stop     func() bool
	resp     *http.Response
	req      *http.Request
	x        *exchange    // its done ends the attempt
	wrote    <-chan error // request body writer, when there was a body
	once     sync.Once
	finished atomic.Bool
	eof      atomic.Bool
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.finished.Load() {
		return 0, io.ErrClosedPipe
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
		b.finish()
	} else if err != nil {
		b.finish()
	}
	return n, err
}

func (b *h1body) Close() error {
	b.finish()
	return nil
}

func (b *h1body) finish() {
	b.once.Do(func() {
		b.finished.Store(true)
		eof := b.eof.Load()
		if b.stop != nil && !b.stop() {
			eof = false // the context ended: the deadline poisoned the conn
		}
		reusable := eof && !b.resp.Close && !b.req.Close
		deadline := false // a deadline was set below and must be cleared for reuse
		if b.wrote != nil {
			select {
			case err := <-b.wrote:
				reusable = reusable && err == nil
			default:
				if !reusable || !b.c.bodyEOF.Load() {
					// The response ended before the upload: the connection
					// is mid-request; closing it also stops the writer.
					reusable = false
					break
				}
				// The body is all in the buffer: wait for the final flush,
				// bounded in case the server stopped reading.
				b.c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				deadline = true
				reusable = <-b.wrote == nil
			}
		}
		// Only a connection whose write deadline was set needs clearing: a
		// poisoned one (context ended) is never reused. Profile: clearing
		// both deadlines on every request cost two poller timer updates.
		if reusable && deadline {
			b.c.nc.SetWriteDeadline(time.Time{})
		}
		b.c.h.putH1(b.c, reusable)
		b.x.done()
	})
}

// upgraded is the body of a 101 response: the raw connection, readable and
// writable (like net/http's Transport), never returned to the pool.
type upgraded struct {
	c    *h1conn
	done func()
	once sync.Once
}

func (u *upgraded) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.c.nc.Write(p) }
func (u *upgraded) Close() error {
	u.once.Do(func() {
		u.c.h.putH1(u.c, false)
		u.done()
	})
	return nil
}

// CloseWrite half-closes the upstream connection when it supports it.
func (u *upgraded) CloseWrite() error {
	if cw, ok := u.c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write not supported")
}
