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
)

// TestWaitingRequestHoldsNoBuffers: a request without a body waiting for
// its upstream holds neither a response write buffer nor a read buffer on
// the lean path (issue 17: the bench's 200 connections all wait at once;
// 4 KiB each), also once its hang-up watcher runs (after 25 ms), over a
// plain socket and over TLS. The write buffer is taken when the response
// starts; the read buffer goes back once the head is parsed.
func TestWaitingRequestHoldsNoBuffers(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { waitingHoldsNoBuffers(t, useTLS) })
	}
}

func waitingHoldsNoBuffers(t *testing.T, useTLS bool) {
	const n = 16
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	addr := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	pc := proxyConfig{clusters: []upstream{{name: "a", addrs: []string{addr}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))}
	if useTLS {
		pc.tls = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"http/1.1"}}
	}
	p := startProxy(t, pc)
	dial := func() (net.Conn, *bufio.Reader) {
		if !useTLS {
			return dialKeepAlive(t, p)
		}
		raw, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}

	var wg sync.WaitGroup
	for range n {
		c, br := dial()
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
			// The connection still serves: a byte the watcher read is
			// not lost.
			getSmall(t, c, br)
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
	// Every connection's request now waits for the backend; look once
	// each has its hang-up watcher. fc.mu orders this look after the
	// serving goroutine's last change of its buffers (it takes fc.mu once
	// the request is parsed).
	deadline := time.Now().Add(10 * time.Second)
	for {
		waiting, watched, held := 0, 0, 0
		p.mgr.fastMu.Lock()
		for fc := range p.mgr.fast {
			fc.mu.Lock()
			if fc.inflight {
				waiting++
				if fc.watched {
					watched++
				}
				if fc.br != nil || fc.bw != nil {
					held++
				}
			}
			fc.mu.Unlock()
		}
		p.mgr.fastMu.Unlock()
		if held > 0 {
			t.Fatalf("%d of %d waiting requests hold a read or write buffer", held, waiting)
		}
		if waiting == n && watched == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests waiting on the lean path, %d watched; want %d", waiting, watched, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
}
