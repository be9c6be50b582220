package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/internal/meshtest"
)

// post sends a POST with a body through c and reads the response.
func post(c *Cluster, body string) (int, error) {
	req, _ := http.NewRequest("POST", "http://svc/", strings.NewReader(body))
	resp, _, err := c.RoundTrip(req, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if string(got) != body {
		return 0, fmt.Errorf("echo mismatch: got %d bytes, want %d", len(got), len(body))
	}
	return resp.StatusCode, nil
}

// An app that closes keep-alive connections sooner than the proxy (issue
// 18 item 5): pooled connections the app closed while idle are detected
// before reuse, so POSTs after an idle gap never land on a dead one.
// Before the fix, most of the ten POSTs failed with UC.
func TestPooledConnClosedByServerWhileIdle(t *testing.T) {
	var arrived atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" && arrived.Add(1) <= 10 {
			select { // hold the first ten so they open ten connections
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		io.Copy(w, r.Body)
	}))
	var closed atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	// The app's keep-alive is short: idle connections close after 50 ms.
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", srv.Listener.Addr().String())}, nil, Options{})
	defer s.Close()
	c := s.Get("c")

	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://svc/", strings.NewReader("warm"))
			req.Header.Set("X-Hold", "1")
			resp, _, err := c.RoundTrip(req, nil)
			if err != nil {
				t.Errorf("warm-up: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	meshtest.WaitFor(t, "ten held requests", func() bool { return arrived.Load() >= 10 })
	once.Do(func() { close(release) })
	wg.Wait()
	if n := c.Stats().UpstreamCxTotal.Load(); n != 10 {
		t.Fatalf("warm-up opened %d connections, want 10", n)
	}
	// The idle gap: the app closes all ten pooled connections.
	meshtest.WaitFor(t, "app closing idle connections", func() bool { return closed.Load() >= 10 })

	failed := 0
	for i := range 10 {
		if code, err := post(c, "payload"); err != nil || code != 200 {
			failed++
			t.Logf("POST %d: %d %v", i, code, err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 10 POSTs failed after the app closed idle connections", failed)
	}
}

// failFirstWrite fails the first Write of a reused connection with nothing
// written, as a write into a connection the peer reset does.
type failFirstWrite struct {
	net.Conn
	arm  *atomic.Bool
	hits *atomic.Int64
}

func (f *failFirstWrite) Write(p []byte) (int, error) {
	if f.arm.CompareAndSwap(true, false) {
		f.hits.Add(1)
		f.Conn.Close()
		return 0, errors.New("write: broken pipe")
	}
	return f.Conn.Write(p)
}

// A request whose bytes never reached the upstream is retried on a fresh
// connection whatever its method, body included (Envoy's reset before
// request sent).
func TestRetryWhenNothingSent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read all first: the Go server closes an unread body once it answers.
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	defer srv.Close()
	var arm atomic.Bool
	var hits atomic.Int64
	d := &net.Dialer{}
	opts := Options{Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &failFirstWrite{Conn: nc, arm: &arm, hits: &hits}, nil
	}}
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", srv.Listener.Addr().String())}, nil, opts)
	defer s.Close()
	c := s.Get("c")
	for _, body := range []string{"first", strings.Repeat("x", 10000), "third"} {
		arm.Store(true)
		if code, err := post(c, body); err != nil || code != 200 {
			t.Fatalf("POST of %d bytes: %d %v", len(body), code, err)
		}
	}
	if hits.Load() != 3 {
		t.Fatalf("failing writes = %d, want 3", hits.Load())
	}
}

// BenchmarkIdleCheck measures the check a pooled connection gets when it is
// taken (one non-blocking MSG_PEEK through RawConn.Control).
func BenchmarkIdleCheck(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	c := &h1conn{nc: nc, peek: newPeeker(nc)}
	c.br = bufio.NewReader(nc)
	b.ReportAllocs()
	for b.Loop() {
		if c.idleClosed() {
			b.Fatal("live connection seen as closed")
		}
	}
}
