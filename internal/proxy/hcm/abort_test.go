package hcm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// abortBackend records, per request, that its upstream request ended
// early: the body read failed or the context ended while it waited.
type abortBackend struct {
	addr    string
	aborted chan string // path of the aborted request
}

func startAbortBackend(t testing.TB) *abortBackend {
	b := &abortBackend{aborted: make(chan string, 64)}
	b.addr = backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note := func() {
			select {
			case b.aborted <- r.URL.Path:
			default:
			}
		}
		switch r.URL.Path {
		case "/wait": // read the body, then never answer
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			note()
		case "/stream": // a response body that never ends
			w.WriteHeader(200)
			for {
				if _, err := w.Write([]byte("tick\n")); err != nil {
					note()
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					note()
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		default:
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				note()
				return
			}
			io.WriteString(w, "ok")
		}
	}))
	return b
}

func (b *abortBackend) wantAborted(t *testing.T, path string) {
	t.Helper()
	select {
	case p := <-b.aborted:
		if p != path {
			t.Fatalf("aborted %s, want %s", p, path)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("upstream request %s not aborted within 5 s", path)
	}
}

// Issue 18 item 1: a request body that cannot be read aborts the upstream
// request and its connection at once, and the client gets 400 and a
// closed connection (it used to wait for the 300 s stream idle timeout).
func TestMalformedChunkedBodyAborts(t *testing.T) {
	be := startAbortBackend(t)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be.addr}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	const head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	for name, body := range map[string]string{
		"hex prefix":    "0x5\r\nhello\r\n0\r\n\r\n",
		"leading space": " 5\r\nhello\r\n0\r\n\r\n",
		"negative":      "-5\r\nhello\r\n0\r\n\r\n",
		"oversized":     "fffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
		"missing crlf":  "5\r\nhelloX0\r\n\r\n",
		"bare lf":       "5\nhello\n0\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, head+body)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("got %d close=%v, want 400 and close", resp.StatusCode, resp.Close)
			}
			if _, err := br.ReadByte(); err == nil {
				t.Fatal("connection still open after the 400")
			}
			be.wantAborted(t, "/")
		})
	}
}

// A client that hangs up cancels its upstream request wherever it waits:
// while its body is being written upstream, while the response is
// awaited, while the response body is copied.
func TestClientHangUpCancelsUpstream(t *testing.T) {
	be := startAbortBackend(t)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be.addr}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	send := func(t *testing.T, req string, wait func(*bufio.Reader)) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		if wait != nil {
			wait(bufio.NewReader(c))
		}
		c.Close()
	}
	t.Run("request write", func(t *testing.T) {
		// Part of the body, then gone.
		send(t, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello", func(*bufio.Reader) { time.Sleep(50 * time.Millisecond) })
		be.wantAborted(t, "/body")
		send(t, "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", nil)
		be.wantAborted(t, "/body")
	})
	t.Run("response wait", func(t *testing.T) {
		send(t, "POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", nil)
		be.wantAborted(t, "/wait")
		send(t, "POST /wait HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", nil)
		be.wantAborted(t, "/wait")
		send(t, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n", nil)
		be.wantAborted(t, "/wait")
	})
	t.Run("body copy", func(t *testing.T) {
		first := func(br *bufio.Reader) { br.ReadString('\n') }
		send(t, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", first)
		be.wantAborted(t, "/stream")
		send(t, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", first)
		be.wantAborted(t, "/stream")
	})
}

func openFDs(t testing.TB) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors needs /proc: %v", err)
	}
	return len(es)
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Issue 18 acceptance: 10,000 malformed-chunk requests leave the process's
// descriptors and heap at their baseline within 5 s, and the proxy
// answers other clients throughout. Client, proxy and backend share the
// process, so the figures cover all three.
func TestMalformedChunkFloodLeavesNoResidue(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	be := startAbortBackend(t)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be.addr}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OnComplete: func(*StreamInfo) {}}})
	go func() { // drain the backend's abort notes
		for range be.aborted {
		}
	}()
	hc := client()
	probe := func() error {
		resp, err := hc.Get("http://" + p.addr + "/probe")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := probe(); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	fds0, heap0 := openFDs(t), heapInUse()

	stop := make(chan struct{})
	var probeErr atomic.Value
	var probes atomic.Int64
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { // the proxy keeps answering while the flood runs
		defer pwg.Done()
		pc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := pc.Get("http://" + p.addr + "/probe")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				probeErr.CompareAndSwap(nil, err)
				return
			}
			probes.Add(1)
		}
	}()

	const workers = 8
	const req = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for next.Add(1) <= int64(n) {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, req)
				// Read to the close: the answer must come, and end the
				// connection, without waiting for any timeout.
				var got []byte
				for {
					k, err := c.Read(buf)
					got = append(got, buf[:k]...)
					if err != nil {
						if !errors.Is(err, io.EOF) && !isReset(err) {
							c.Close()
							errs <- fmt.Errorf("reading the answer: %v (got %q)", err, got)
							return
						}
						break
					}
				}
				c.Close()
				if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
					errs <- fmt.Errorf("answer %q, want 400", got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pwg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if err, _ := probeErr.Load().(error); err != nil {
		t.Fatalf("proxy stopped answering during the flood: %v", err)
	}
	if probes.Load() == 0 {
		t.Fatal("no probe ran during the flood")
	}
	hc.CloseIdleConnections()

	// Baseline within 5 s (a little slack for the runtime's own
	// descriptors and for TIME_WAIT-free lingering closes).
	deadline := time.Now().Add(5 * time.Second)
	var fds int
	var heap uint64
	for {
		fds, heap = openFDs(t), heapInUse()
		if fds <= fds0+4 && heap <= heap0+4<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d malformed requests: %d descriptors (baseline %d), heap %d KiB (baseline %d KiB)",
				n, fds, fds0, heap>>10, heap0>>10)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d malformed requests: descriptors %d → %d, heap %d → %d KiB, %d probes answered",
		n, fds0, fds, heap0>>10, heap>>10, probes.Load())
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
