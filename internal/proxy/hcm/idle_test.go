package hcm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/park"
)

// idleConnCost opens n keep-alive connections through a proxy, sends one
// request on each and leaves them idle; it returns the Go heap and stack
// bytes per connection (proxy and client sockets in this process) and the
// RSS growth per connection. With handoff the connections' waits move to
// fresh goroutines (as after idleHandoff in a proxy), or with parker to
// it, before it measures.
func idleConnCost(t testing.TB, n int, handoff bool, parker *park.Waiter) (goBytes, rssBytes float64) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t.(*testing.T))}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OnComplete: func(*StreamInfo) {}}})
	p.mgr.idleHandoff = time.Hour
	if handoff {
		p.mgr.idleHandoff = 20 * time.Millisecond
	}
	p.mgr.parker = parker
	p.cur.Store(p.mgr) // orders the fields before the connections' Load
	one := func() net.Conn {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		c.SetDeadline(time.Time{})
		return c
	}
	warm := one() // pools, upstream connection
	defer warm.Close()
	if handoff {
		waitDetached(t, p, 1)
	}
	g0, r0 := goMem(), rss()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		conns = append(conns, one())
	}
	if handoff {
		waitDetached(t, p, int64(n+1))
	}
	if parker != nil {
		deadline := time.Now().Add(20 * time.Second)
		for parker.Len() < n+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d idle connections parked", parker.Len(), n+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Idle: let the GC shrink the stacks grown while serving.
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	g1, r1 := goMem(), rss()
	return float64(int64(g1)-int64(g0)) / float64(n), float64(r1-r0) / float64(n)
}

func waitDetached(t testing.TB, p *proxy, n int64) {
	deadline := time.Now().Add(20 * time.Second)
	for p.detached.Load() < n {
		if time.Now().After(deadline) {
			p.mgr.fastMu.Lock()
			open := len(p.mgr.fast)
			p.mgr.fastMu.Unlock()
			t.Fatalf("%d of %d idle connections handed off (%d open in the lean path)", p.detached.Load(), n, open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func goMem() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// Live objects (HeapInuse counts whole spans: noisy by +-1 KB per
	// connection) and stacks.
	return ms.HeapAlloc + ms.StackInuse
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Issue 18 item 9: an idle keep-alive HTTP/1.1 connection holds no
// buffers (they are pooled and taken again when bytes arrive) and, once
// idle for idleHandoff, parks in a park.Waiter without a goroutine (or,
// where it cannot, waits on a fresh goroutine with a minimal stack), so
// it costs at most 4 KB of Go memory, client socket included (it was
// ~35 KB with buffers, 7.3 KB on the serving goroutine's stack, 3.4 KB on
// a fresh goroutine; parked 1.5-1.7 KB).
func TestIdleConnectionCost(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 500
	}
	before, beforeRSS := idleConnCost(t, n, false, nil)
	goro, goroRSS := idleConnCost(t, n, true, nil)
	var per, perRSS float64
	if w, err := park.New(); err == nil {
		defer w.Close()
		per, perRSS = idleConnCost(t, n, true, w)
	} else {
		per, perRSS = goro, goroRSS // no parking here
	}
	t.Logf("%d idle connections, Go heap+stack (RSS) each: %.0f B (%.0f B) on the serving goroutine, %.0f B (%.0f B) on a fresh goroutine, %.0f B (%.0f B) parked",
		n, before, beforeRSS, goro, goroRSS, per, perRSS)
	if limit := 4096.0; per > limit && !raceEnabled {
		t.Fatalf("an idle connection costs %.0f B of Go memory, want <= %.0f", per, limit)
	}
}

// A gateway closes a client that sends its request head too slowly
// (slowloris); request_headers_timeout from the config wins over the
// default, and a sidecar has none by default.
func TestRequestHeadersTimeout(t *testing.T) {
	be := backend(t, echo("a"))
	routes := rc(vhost(rt("r", "/", toCluster("a"))))
	gw := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes,
		mutateHCM: func(h *hcmv3HCM) { h.UseRemoteAddress = wrapperspb.Bool(true) }})
	if d := gw.mgr.h1.ReadHeaderTimeout; d != GatewayRequestHeadersTimeout {
		t.Errorf("gateway default %v", d)
	}
	side := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes})
	if d := side.mgr.h1.ReadHeaderTimeout; d != 0 {
		t.Errorf("sidecar default %v", d)
	}
	short := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes,
		mutateHCM: func(h *hcmv3HCM) {
			h.UseRemoteAddress = wrapperspb.Bool(true)
			h.RequestHeadersTimeout = durationpb.New(300 * time.Millisecond)
		}})
	for _, keepAlive := range []bool{false, true} {
		c, err := net.Dial("tcp", short.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if keepAlive { // the timeout also covers the next request's head
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
		}
		start := time.Now()
		closed := false
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				closed = true
				break
			}
			time.Sleep(50 * time.Millisecond)
			if time.Since(start) > 5*time.Second {
				break
			}
		}
		if !closed {
			// The write may succeed into the socket buffer: the read tells.
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := br.ReadByte()
			closed = err != nil && !isTimeout(err)
		}
		if !closed {
			t.Errorf("keepAlive=%v: a slow head was not cut off", keepAlive)
		}
	}
}
