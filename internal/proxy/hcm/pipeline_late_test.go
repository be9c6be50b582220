package hcm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestPipelinedRequestDuringUpstreamWait (coverage; the lean path passes
// it without change): a client pipelines its second
// request while the first waits for the upstream, so the second's bytes
// are in the socket before the proxy writes the first response from its
// read wait. The wait must still find them: the poller's readiness was
// reset after they arrived, and a wait that trusts it never wakes.
func TestPipelinedRequestDuringUpstreamWait(t *testing.T) {
	got := make(chan struct{}, 1)
	release := make(chan struct{})
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			got <- struct{}{}
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("the upstream never got the first request")
		}
		io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
		// Let the second request reach the proxy's socket before the
		// first response is written.
		time.Sleep(20 * time.Millisecond)
		release <- struct{}{}
		br := bufio.NewReader(c)
		for _, want := range []string{"/slow", "/fast"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d, response for %s: %v", i, want, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != want {
				t.Fatalf("round %d: body %q, want %q", i, b, want)
			}
		}
		c.Close()
	}
}
