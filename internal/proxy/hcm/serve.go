package hcm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/downstream"
)

// h2Preface starts every HTTP/2 connection (RFC 9113 3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// ServeConn serves HTTP on c until the connection ends. It owns c and
// closes it.
func (m *Manager) ServeConn(c net.Conn, info *downstream.Info) {
	if m.draining.Load() {
		c.Close()
		return
	}
	if info == nil {
		info = &downstream.Info{}
	}
	cc := &conn{Conn: c, info: info}
	if info.Remote.IsValid() {
		cc.peer = info.Remote.Addr().Unmap().String()
	}
	h2 := m.codec == hcmv3.HttpConnectionManager_HTTP2 || info.Protocol == downstream.HTTP2 ||
		(info.TLS != nil && info.TLS.NegotiatedProtocol == "h2")
	if !h2 && m.codec == hcmv3.HttpConnectionManager_AUTO && info.Protocol != downstream.HTTP1 {
		// Sniff for h2c prior knowledge; the peeked bytes are replayed. The
		// request headers timeout covers the wait: a client that connects
		// and sends nothing is closed (slowloris; it waited forever here).
		if d := m.h1.ReadHeaderTimeout; d > 0 {
			c.SetReadDeadline(time.Now().Add(d))
		}
		br := bufio.NewReaderSize(c, 64)
		h2 = sniffH2(br)
		if br.Buffered() == 0 {
			cc.Close() // timed out, or closed before a byte
			return
		}
		if m.h1.ReadHeaderTimeout > 0 {
			c.SetReadDeadline(time.Time{})
		}
		cc.r = br
	}
	if h2 && m.ownH2 {
		m.serveOwnH2(cc)
		return
	}
	if h2 {
		m.serveH2(cc)
		return
	}
	if !m.noFast {
		m.serveFast(cc)
		return
	}
	m.serveH1(cc)
}

// serveH2 serves cc with the HTTP/2 server. A function of its own keeps
// ServeConn's frame small: an idle HTTP/1 connection's goroutine waits
// below it, and the GC shrinks stacks only when little of them is used.
//
//go:noinline
func (m *Manager) serveH2(cc *conn) {
	ctx := context.WithValue(context.Background(), connKey{}, cc)
	m.h2.ServeConn(h2Conn(cc), &http2.ServeConnOpts{Context: ctx, BaseConfig: m.h1, Handler: m})
	cc.Close()
}

// serveH1 serves cc with net/http's HTTP/1 server.
func (m *Manager) serveH1(cc *conn) {
	done := cc.doneCh()
	l := &oneConn{c: cc, done: done, closed: make(chan struct{})}
	m.h1.Serve(l)
	if l.used {
		<-done // Serve returns early when draining; the conn is still served
		return
	}
	cc.Close() // refused: the manager is draining
}

type connKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*conn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

func connFrom(ctx context.Context) *conn {
	cc, _ := ctx.Value(connKey{}).(*conn)
	return cc
}

// conn carries the downstream info to the handler and reports when the
// HTTP server (or a hijacker) closes the connection.
type conn struct {
	net.Conn
	replay []byte        // read by the lean HTTP/1 path, for net/http to read again
	r      *bufio.Reader // non-nil when bytes were peeked
	info   *downstream.Info
	peer   string // info.Remote's address, formatted once per connection
	// closeAfter: net/http took this connection over from the lean path
	// for one request; its response closes the connection, so every later
	// head goes through the lean path's framing check again.
	closeAfter bool
	mu         sync.Mutex
	closed     bool
	// done is closed with the connection; made only for net/http's
	// server, which needs it (an idle lean-path connection holds none).
	done chan struct{}
	h2   *h2conn // the HTTP/2 server's view of a plain TCP connection
}

// doneCh is closed when the connection is.
func (c *conn) doneCh() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.closed {
			close(c.done)
		}
	}
	return c.done
}

// peerAddr is the downstream peer's IP ("" when unknown).
func (c *conn) peerAddr() string {
	if c.peer == "" && c.info.Remote.IsValid() {
		return c.info.Remote.Addr().Unmap().String()
	}
	return c.peer
}

func (c *conn) Read(b []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(b, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(b)
		}
		c.r = nil
	}
	return c.Conn.Read(b)
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.done != nil {
			close(c.done)
		}
	}
	c.mu.Unlock()
	return err
}

// CloseWrite half-closes when the underlying connection can (CONNECT and
// upgrade tunnels).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// oneConn is a listener that yields one connection, then blocks until that
// connection is closed or the server shuts down (http.Server.Shutdown
// waits for Serve to return before closing idle connections).
type oneConn struct {
	c      *conn
	done   chan struct{} // c's
	used   bool
	closed chan struct{}
	once   sync.Once
}

var errDone = errors.New("connection finished")

func (l *oneConn) Accept() (net.Conn, error) {
	if !l.used {
		select {
		case <-l.closed:
			return nil, errDone
		default:
		}
		l.used = true
		return l.c, nil
	}
	select {
	case <-l.done:
	case <-l.closed:
	}
	return nil, errDone
}

func (l *oneConn) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConn) Addr() net.Addr { return l.c.LocalAddr() }

// sniffH2 reads only as many bytes as it takes to tell the HTTP/2 preface
// from an HTTP/1 request line (short requests must not block it).
func sniffH2(br *bufio.Reader) bool {
	for n := 1; n <= len(h2Preface); n++ {
		b, err := br.Peek(n)
		if len(b) < n || err != nil {
			return false
		}
		if !bytes.Equal(b, h2Preface[:n]) {
			return false
		}
	}
	return true
}
