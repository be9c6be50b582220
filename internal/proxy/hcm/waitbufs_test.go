package hcm

import (
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitingRequestHoldsNoWriteBuffer: a request waiting for its
// upstream holds no response write buffer on the lean path (issue 17:
// the bench's 200 connections all wait at once; 4 KiB each). The buffer
// is taken when the response starts.
func TestWaitingRequestHoldsNoWriteBuffer(t *testing.T) {
	const n = 24
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	addr := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{addr}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})

	// Count the write buffers made from here on, with the pool emptied
	// (a pool survives one GC in its victim cache).
	var made atomic.Int64
	oldNew := outPool.New
	outPool.New = func() any { made.Add(1); return oldNew() }
	t.Cleanup(func() { outPool.New = oldNew })
	runtime.GC()
	runtime.GC()

	var wg sync.WaitGroup
	for range n {
		c, br := dialKeepAlive(t, p)
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
	if got := made.Load(); got > 0 {
		t.Errorf("%d write buffers made while %d requests wait for their upstream, want none", got, n)
	}
	close(release)
	wg.Wait()
	if made.Load() == 0 {
		t.Error("no write buffer made for the responses: the count does not see the pool")
	}
}
