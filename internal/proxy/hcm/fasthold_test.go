package hcm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// holdProxy is a lean-path proxy in front of a backend serving /small and
// a /big body of bigLen bytes.
func holdProxy(t *testing.T, bigLen int) *proxy {
	big := strings.Repeat("x", bigLen)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			// The tail comes alone, so the proxy's last write is small
			// (held) while the client's buffers are still full.
			io.WriteString(w, big)
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
			io.WriteString(w, "tail")
			return
		}
		io.WriteString(w, "small")
	}))
	return startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
}

// rawGet sends one GET on c and reads its response body.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) string {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d, %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// The lean path writes a kept-alive response from inside the wait for the
// next request (fasthold.go). A client that sends its next request the
// moment it has the response must always be served: a readiness lost
// between the write and the wait would stall a request until the deadline.
func TestHeldResponseNextRequestAtOnce(t *testing.T) {
	p := holdProxy(t, 0)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for i := 0; i < 500; i++ {
		if got := rawGet(t, c, br, "/small"); got != "small" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
}

// A large response to a client that reads late, whose small last part is
// held, arrives whole, and the next request is served. (Whether the held
// part finds the socket buffer full, the EAGAIN branch of awaitHeld,
// depends on timing; sockio's TestHeldWriteLargerThanBuffers covers that
// step itself.)
func TestHeldResponseSlowReader(t *testing.T) {
	const n = 16 << 20
	p := holdProxy(t, n)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the buffers fill
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	if err != nil || got != n+4 {
		t.Fatalf("big body: %d bytes, %v", got, err)
	}
	if got := rawGet(t, c, br, "/small"); got != "small" {
		t.Fatalf("after the big response: %q", got)
	}
}
