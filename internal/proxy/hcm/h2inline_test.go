package hcm

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ownConns is the manager's connections on the own HTTP/2 server.
func ownConns(p *proxy) []*h2sConn {
	p.mgr.own.mu.Lock()
	defer p.mgr.own.mu.Unlock()
	var cs []*h2sConn
	for sc := range p.mgr.own.conns {
		cs = append(cs, sc)
	}
	return cs
}

// Streams served on the read loop's goroutine (h2inline.go): serial
// requests run inline; a stream the client opens while an inline handler
// waits on its upstream is served anyway (the read loop is taken over)
// and ends inline serving on that connection; a client's reset of an
// inline stream reaches the upstream; a response larger than the
// client's stream window completes.
func TestOwnH2InlineStreams(t *testing.T) {
	release := make(chan struct{})
	var started, cancelled atomic.Int32
	big := strings.Repeat("b", 5<<20) // beyond x/net's transport stream window (4 MiB)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/block":
			started.Add(1)
			<-release
			io.WriteString(w, "released")
		case "/hold": // until the client goes
			started.Add(1)
			<-r.Context().Done()
			cancelled.Add(1)
		case "/big":
			io.WriteString(w, big)
		default:
			io.WriteString(w, "ok")
		}
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OwnHTTP2: true, OnComplete: func(*StreamInfo) {}}})
	get := func(c *http.Client, ctx context.Context, path string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	c := h2cClient()
	c.Timeout = 20 * time.Second
	for i := 0; i < 3; i++ {
		if got, err := get(c, context.Background(), "/fast"); err != nil || got != "ok" {
			t.Fatalf("serial GET %d: %q, %v", i, got, err)
		}
	}
	cs := ownConns(p)
	if len(cs) != 1 {
		t.Fatalf("%d connections, want 1", len(cs))
	}
	sc := cs[0]
	sc.inl.mu.Lock()
	served := sc.inl.served
	sc.inl.mu.Unlock()
	// The first HEADERS come with the client's SETTINGS and WINDOW_UPDATE
	// behind them: that stream goes to a handler goroutine.
	if served < 2 || !sc.inl.ok {
		t.Fatalf("serial GETs: %d served inline (inline allowed: %v), want 2", served, sc.inl.ok)
	}

	// A second stream while the first waits inline on its upstream.
	done := make(chan string, 1)
	go func() {
		got, err := get(c, context.Background(), "/block")
		if err != nil {
			got = err.Error()
		}
		done <- got
	}()
	waitFor("the blocked request upstream", func() bool { return started.Load() == 1 })
	if got, err := get(c, context.Background(), "/fast"); err != nil || got != "ok" {
		t.Fatalf("GET beside an inline stream: %q, %v", got, err)
	}
	close(release)
	if got := <-done; got != "released" {
		t.Fatalf("blocked GET: %q", got)
	}
	sc.mu.Lock()
	concurrent := sc.concurrent
	sc.mu.Unlock()
	if !concurrent {
		t.Fatal("two streams were open at once, but the connection is not marked concurrent")
	}

	// A reset of an inline stream cancels its upstream request.
	c2 := h2cClient()
	c2.Timeout = 20 * time.Second
	if got, err := get(c2, context.Background(), "/fast"); err != nil || got != "ok" {
		t.Fatalf("fresh connection: %q, %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := get(c2, ctx, "/hold")
		errc <- err
	}()
	waitFor("the held request upstream", func() bool { return started.Load() == 2 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled request succeeded")
	}
	waitFor("the upstream request's cancellation", func() bool { return cancelled.Load() == 1 })

	// A response beyond the client's stream window, inline.
	if got, err := get(c2, context.Background(), "/big"); err != nil || got != big {
		t.Fatalf("large response: %d of %d bytes, %v", len(got), len(big), err)
	}
	if got, err := get(c2, context.Background(), "/fast"); err != nil || got != "ok" {
		t.Fatalf("after the large response: %q, %v", got, err)
	}
}
