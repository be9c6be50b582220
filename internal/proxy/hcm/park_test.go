//go:build linux

package hcm

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/park"
)

// Idle connections park in a park.Waiter, with no goroutine of their own
// (issue 18 item 9), and keep every behaviour of a waiting goroutine: the
// next request is served, timeouts close them on time, a drain closes
// them at once, a hang-up frees them, and a TLS connection holding a
// pipelined request is served instead of parked.
func TestIdleParked(t *testing.T) {
	start := func(t *testing.T, pc proxyConfig) (*proxy, *park.Waiter) {
		if pc.clusters == nil {
			pc.clusters = []upstream{{name: "a", addrs: []string{fastBackend(t)}}}
			pc.routes = rc(vhost(rt("r", "/", toCluster("a"))))
		}
		p := startProxy(t, pc)
		w, err := park.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		p.mgr.parker = w
		p.mgr.idleHandoff = 20 * time.Millisecond
		p.cur.Store(p.mgr) // orders the fields before the connections' Load
		return p, w
	}
	parked := func(t *testing.T, w *park.Waiter, n int) {
		t.Helper()
		meshtest.WaitFor(t, "parked connections", func() bool { return w.Len() == n })
	}
	closed := func(t *testing.T, br *bufio.Reader) time.Duration {
		t.Helper()
		began := time.Now()
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("connection not closed: %v", err)
		}
		return time.Since(began)
	}
	tracked := func(p *proxy) int {
		p.mgr.fastMu.Lock()
		defer p.mgr.fastMu.Unlock()
		return len(p.mgr.fast)
	}

	t.Run("serves and parks again", func(t *testing.T) {
		p, w := start(t, proxyConfig{})
		c, br := dialKeepAlive(t, p)
		for i := 0; i < 3; i++ {
			getSmall(t, c, br)
			parked(t, w, 1)
		}
		c2, br2 := dialKeepAlive(t, p)
		getSmall(t, c2, br2)
		parked(t, w, 2)
		if n := p.detached.Load(); n < 2 {
			t.Fatalf("%d detached", n)
		}
	})
	t.Run("hang-up", func(t *testing.T) {
		p, w := start(t, proxyConfig{})
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		parked(t, w, 1)
		c.Close()
		parked(t, w, 0)
		meshtest.WaitFor(t, "the connection forgotten", func() bool { return tracked(p) == 0 })
	})
	t.Run("idle timeout", func(t *testing.T) {
		p, w := start(t, proxyConfig{mutateHCM: func(h *hcmv3HCM) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(500 * time.Millisecond)}
		}})
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		began := time.Now()
		parked(t, w, 1)
		closed(t, br)
		if d := time.Since(began); d < 400*time.Millisecond || d > 5*time.Second {
			t.Fatalf("closed after %v, want ~500ms", d)
		}
		parked(t, w, 0)
	})
	t.Run("request headers timeout", func(t *testing.T) {
		// An HTTP/1-only manager (no h2c sniff) parks a new connection
		// until its first byte, for at most request_headers_timeout.
		p, w := start(t, proxyConfig{mutateHCM: func(h *hcmv3HCM) {
			h.CodecType = hcmv3.HttpConnectionManager_HTTP1
			h.RequestHeadersTimeout = durationpb.New(500 * time.Millisecond)
		}})
		began := time.Now()
		_, br := dialKeepAlive(t, p) // sends nothing
		parked(t, w, 1)
		closed(t, br)
		if d := time.Since(began); d < 400*time.Millisecond || d > 5*time.Second {
			t.Fatalf("closed after %v, want ~500ms", d)
		}
		parked(t, w, 0)
	})
	t.Run("drain", func(t *testing.T) {
		p, w := start(t, proxyConfig{})
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		parked(t, w, 1)
		p.mgr.Retire()
		time.Sleep(50 * time.Millisecond) // still open during the drain period
		if w.Len() != 1 {
			t.Fatal("Retire closed an idle connection before the drain period ended")
		}
		p.mgr.CloseIdle()
		if d := closed(t, br); d > 2*time.Second {
			t.Fatalf("closed %v after CloseIdle", d)
		}
		parked(t, w, 0)
		meshtest.WaitFor(t, "the connection forgotten", func() bool { return tracked(p) == 0 })
	})
	t.Run("tls", func(t *testing.T) {
		p, w := start(t, proxyConfig{tls: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"http/1.1"}}})
		raw, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		bc := &batchConn{Conn: raw}
		c := tls.Client(bc, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		getSmall(t, c, br)
		parked(t, w, 1)
		getSmall(t, c, br)
		parked(t, w, 1)
		// Two requests in two TLS records in one TCP segment.
		bc.hold(true)
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
		bc.hold(false)
		readOK(t, br)
		readOK(t, br)
		parked(t, w, 1)
	})
	t.Run("closed by the listener", func(t *testing.T) {
		p, w := start(t, proxyConfig{})
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		parked(t, w, 1)
		p.closeAll() // as a listener after its drain timeout
		closed(t, br)
		parked(t, w, 0)
		meshtest.WaitFor(t, "the connection forgotten", func() bool { return tracked(p) == 0 })
	})
}

func readOK(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
}

// batchConn holds writes while told to and sends them in one write.
type batchConn struct {
	net.Conn
	mu   sync.Mutex
	held bool
	buf  []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) hold(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = on
	if !on && len(b.buf) > 0 {
		b.Conn.Write(b.buf)
		b.buf = nil
	}
}

// A tls.Conn that read a record ahead holds it where the socket will not
// signal it again: such a connection is not parked, and the byte the
// check took is read again.
func TestParkableTLSReadAhead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.67.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- nil
			return
		}
		done <- c
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sraw := <-done
	if sraw == nil {
		t.Fatal("accept failed")
	}
	defer sraw.Close()
	srv := tls.Server(sraw, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	bc := &batchConn{Conn: raw}
	cli := tls.Client(bc, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	fc := &fastConn{cc: &conn{Conn: srv}}
	if fc.parkable() == nil {
		t.Fatal("an idle TLS connection is not parkable")
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Two one-byte records in one segment: reading the first reads both.
	bc.hold(true)
	cli.Write([]byte("a"))
	cli.Write([]byte("b"))
	bc.hold(false)
	one := make([]byte, 1)
	if n, err := srv.Read(one); n != 1 || one[0] != 'a' {
		t.Fatalf("read %q %v", one[:n], err)
	}
	if fc.parkable() != nil {
		t.Fatal("parkable with a record read ahead")
	}
	if string(fc.cc.replay) != "b" {
		t.Fatalf("replay %q, want the read-ahead byte", fc.cc.replay)
	}
}

// dialKeepAlive opens a client connection to p for the idle tests.
func dialKeepAlive(t *testing.T, p *proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// getSmall sends one keep-alive GET on c and expects a 200.
func getSmall(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	readOK(t, br)
}
