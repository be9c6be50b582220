package tcp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// env dials cluster name -> address; unknown clusters fail with NC.
type env map[string]string

func (e env) Dial(ctx context.Context, cluster, _ string) (net.Conn, error) {
	addr, ok := e[cluster]
	if !ok {
		return nil, &rflag.Error{Flag: rflag.NC, Details: "cluster_not_found"}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &rflag.Error{Flag: rflag.UF, Status: 503, Details: "upstream_connect_failure", Err: err}
	}
	return c, nil
}

// front serves p on a loopback listener and returns its address.
func front(t *testing.T, p *Proxy) string {
	return meshtest.TCPServer(t, func(c net.Conn) {
		p.ServeConn(c, &downstream.Info{OriginalDst: netip.MustParseAddrPort(c.LocalAddr().String())})
	})
}

func TestWeightedSplit(t *testing.T) {
	named := func(name string) string {
		return meshtest.TCPServer(t, func(c net.Conn) { io.WriteString(c, name) })
	}
	e := env{"v1": named("v1"), "v2": named("v2")}
	p, err := New(&tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{
			{Name: "v1", Weight: 80}, {Name: "v2", Weight: 20}}}}}, e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := front(t, p)
	counts := map[string]int{}
	const n = 1000
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		counts[string(b)]++
	}
	// 80/20 over 1000 connections: the standard deviation is ~12.6, so
	// ±60 is beyond 4.5 sigma.
	if counts["v1"]+counts["v2"] != n || counts["v1"] < 740 || counts["v1"] > 860 {
		t.Fatalf("split %v, want ~800/200", counts)
	}
	if got := p.Stats().DownstreamCxTotal.Load(); got != n {
		t.Fatalf("downstream_cx_total %d", got)
	}
}

func TestHalfClose(t *testing.T) {
	// The backend reads to EOF, then answers: only possible if the proxy
	// forwards the client's FIN and keeps the other direction open.
	up := meshtest.TCPServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(b))
	})
	p, err := New(&tcpv3.TcpProxy{StatPrefix: "t", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}}, env{"c": up}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", front(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := strings.Repeat("x", 100000)
	io.WriteString(c, payload)
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got 100000 bytes" {
		t.Fatalf("got %q, %v", b, err)
	}
	meshtest.WaitFor(t, "byte counters", func() bool {
		return p.Stats().DownstreamCxRxBytes.Load() == 100000 && p.Stats().DownstreamCxTxBytes.Load() == int64(len("got 100000 bytes"))
	})
}

// fakeClock moves only when told to; Advance runs the timers that fall due
// on the caller's goroutine, in order.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	when   time.Time
	f      func()
	active bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f, active: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.when, t.active = t.c.now.Add(d), true
	return was
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if t.active && !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		c.now, next.active = next.when, false
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

// TestIdleTimeout moves a fake clock, so a slow machine cannot close an
// active connection early or keep an idle one open.
func TestIdleTimeout(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	up := meshtest.TCPServer(t, func(c net.Conn) { io.Copy(c, c) })
	p, err := New(&tcpv3.TcpProxy{StatPrefix: "t", IdleTimeout: durationpb.New(10 * time.Second),
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}}, env{"c": up}, Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", front(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A round trip through the echo backend: both directions have stamped
	// their last activity before the reply arrives.
	ping := func(when string) {
		t.Helper()
		io.WriteString(c, "ping")
		buf := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("active connection closed %s: %v", when, err)
		}
	}
	ping("at start") // the idle timer is armed before the first byte is copied
	if n := clock.pending(); n != 1 {
		t.Fatalf("%d idle timers armed, want 1", n)
	}
	// Traffic keeps the connection alive past the timeout...
	clock.Advance(6 * time.Second)
	ping("6s in")
	clock.Advance(6 * time.Second) // timer fires at 10s, 4s after the last byte
	ping("12s in, after the first timer")
	clock.Advance(9 * time.Second)
	ping("21s in, 9s after the last byte")
	if got := p.Stats().IdleTimeout.Load(); got != 0 {
		t.Fatalf("idle_timeout = %d on an active connection", got)
	}
	// ...silence closes it.
	clock.Advance(10 * time.Second)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection still open")
	}
	meshtest.WaitFor(t, "idle_timeout counter", func() bool { return p.Stats().IdleTimeout.Load() == 1 })
}

func TestConnectFailureClosesDownstream(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p, err := New(&tcpv3.TcpProxy{StatPrefix: "t", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}}, env{"c": dead}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", front(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a proxy whose upstream is down", n)
	}
	if p.Stats().UpstreamConnectFailure.Load() != 1 {
		t.Fatal("connect failure not counted")
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		cfg  *tcpv3.TcpProxy
		want string
	}{
		{&tcpv3.TcpProxy{StatPrefix: "x"}, "cluster or weighted_clusters"},
		{&tcpv3.TcpProxy{ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}, MaxConnectAttempts: wrapperspb.UInt32(3)}, "max_connect_attempts"},
		{&tcpv3.TcpProxy{ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
			Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a"}}}}}, "no cluster with a weight"},
	} {
		if _, err := New(tc.cfg, env{}, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// BenchmarkConn measures one proxied connection: connect, one round trip,
// close (allocations include both sides' net package costs).
func BenchmarkConn(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	p, err := New(&tcpv3.TcpProxy{StatPrefix: "b", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}}, env{"c": ln.Addr().String()}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer front.Close()
	go func() {
		for {
			c, err := front.Accept()
			if err != nil {
				return
			}
			go p.ServeConn(c, &downstream.Info{})
		}
	}()
	buf := make([]byte, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", front.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Write([]byte{'x'})
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
