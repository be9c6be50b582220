package hcm

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// An idle connection whose wait moved to a fresh goroutine (issue 18 item
// 9) keeps every behaviour of the serving goroutine's wait: it serves the
// next requests, its idle and request headers timeouts still end it at
// their time, a drain closes it, and a client hang-up frees it.
func TestIdleHandoff(t *testing.T) {
	start := func(t *testing.T, mutate func(*hcmv3HCM)) *proxy {
		p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
			routes: rc(vhost(rt("r", "/", toCluster("a")))), mutateHCM: mutate})
		p.mgr.idleHandoff = 20 * time.Millisecond
		return p
	}
	closedWithin := func(t *testing.T, br *bufio.Reader, min, max time.Duration, began time.Time) {
		t.Helper()
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("connection not closed: %v", err)
		}
		if d := time.Since(began); d < min || d > max {
			t.Fatalf("closed after %v, want %v..%v", d, min, max)
		}
	}
	fastConns := func(p *proxy) int {
		p.mgr.fastMu.Lock()
		defer p.mgr.fastMu.Unlock()
		return len(p.mgr.fast)
	}

	t.Run("serves after handoff", func(t *testing.T) {
		p := start(t, nil)
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		waitDetached(t, p, 1)
		getSmall(t, c, br) // on the fresh goroutine
		time.Sleep(50 * time.Millisecond)
		getSmall(t, c, br) // after handing off again
		c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for fastConns(p) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("a closed handed-off connection is still tracked")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		p := start(t, func(h *hcmv3HCM) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(400 * time.Millisecond)}
		})
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		began := time.Now()
		closedWithin(t, br, 300*time.Millisecond, 5*time.Second, began)
		if p.detached.Load() != 1 {
			t.Errorf("the wait was not handed off (%d)", p.detached.Load())
		}
	})
	// A client that connects and sends nothing is cut off too (it waited
	// forever in the h2c sniff before).
	t.Run("request headers timeout", func(t *testing.T) {
		p := start(t, func(h *hcmv3HCM) { h.RequestHeadersTimeout = durationpb.New(400 * time.Millisecond) })
		began := time.Now()
		_, br := dialKeepAlive(t, p) // sends nothing
		closedWithin(t, br, 300*time.Millisecond, 5*time.Second, began)
	})
	t.Run("request headers timeout after a request", func(t *testing.T) {
		p := start(t, func(h *hcmv3HCM) { h.RequestHeadersTimeout = durationpb.New(400 * time.Millisecond) })
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		waitDetached(t, p, 1)
		io.WriteString(c, "GET /small HTTP/1.1\r\n") // and no more
		closedWithin(t, br, 300*time.Millisecond, 5*time.Second, time.Now())
	})
	t.Run("tls", func(t *testing.T) {
		p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
			routes: rc(vhost(rt("r", "/", toCluster("a")))),
			tls:    &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"http/1.1"}}})
		p.mgr.idleHandoff = 20 * time.Millisecond
		raw, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		getSmall(t, c, br)
		waitDetached(t, p, 1)
		getSmall(t, c, br) // read through TLS by the fresh goroutine
		time.Sleep(50 * time.Millisecond)
		getSmall(t, c, br)
	})
	t.Run("drain", func(t *testing.T) {
		p := start(t, nil)
		c, br := dialKeepAlive(t, p)
		getSmall(t, c, br)
		waitDetached(t, p, 1)
		p.mgr.Retire()
		p.mgr.CloseIdle()
		closedWithin(t, br, 0, 5*time.Second, time.Now())
	})
}
