package hcm

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestWaitingRequestHoldsNoBuffers: a request without a body waiting for
// its upstream holds neither a response write buffer nor a read buffer on
// the lean path (issue 17: the bench's 200 connections all wait at once;
// 4 KiB each). The write buffer is taken when the response starts; the
// read buffer goes back once the head is parsed.
func TestWaitingRequestHoldsNoBuffers(t *testing.T) {
	const n = 24
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	addr := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{addr}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})

	var wg sync.WaitGroup
	for range n {
		c, br := dialKeepAlive(t, p)
		// A first request, so the connection is past the protocol sniffing
		// and waits on its socket (as every keep-alive connection after
		// its first request).
		getSmall(t, c, br)
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Errorf("got %d %q", resp.StatusCode, b)
			}
		}()
	}
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-arrived:
		case <-timeout:
			t.Fatal("requests did not reach the backend")
		}
	}
	// Every connection's request now waits for the backend. fc.mu orders
	// this look after the serving goroutine's last change of its buffers
	// (it takes fc.mu once the request is parsed).
	p.mgr.fastMu.Lock()
	conns := 0
	for fc := range p.mgr.fast {
		fc.mu.Lock()
		if fc.inflight {
			conns++
			if fc.br != nil || fc.bw != nil {
				t.Errorf("a waiting request holds a read buffer (%v) or a write buffer (%v)", fc.br != nil, fc.bw != nil)
			}
		}
		fc.mu.Unlock()
	}
	p.mgr.fastMu.Unlock()
	if conns != n {
		t.Fatalf("%d requests in flight on the lean path, want %d", conns, n)
	}
	close(release)
	wg.Wait()
}
