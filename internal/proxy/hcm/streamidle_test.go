package hcm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// On the lean path the stream idle timer cancels the stream's own context
// (filter.Stream.Cancel) instead of one of the router's: the answer is
// still 408 with flag SI, for a request with and without a body, and the
// connection stays open for the next request.
func TestStreamIdleOnLeanPathKeepsConnection(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/fast" {
			io.WriteString(w, "fast")
			return
		}
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
		mutateHCM: func(h *hcmv3HCM) { h.StreamIdleTimeout = durationpb.New(100 * time.Millisecond) }})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	send := func(req string) (int, string) {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.Close {
			t.Fatalf("%q: the response closes the connection", req)
		}
		return resp.StatusCode, string(b)
	}
	for _, req := range []string{
		"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
	} {
		if code, body := send(req); code != 408 || body != "stream timeout" {
			t.Fatalf("%q: %d %q, want 408", req, code, body)
		}
		if info := p.nextInfo(t); info.Flags != rflag.SI {
			t.Fatalf("%q: flags %v, want SI", req, info.Flags)
		}
		if code, body := send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"); code != 200 || body != "fast" {
			t.Fatalf("the next request on the connection: %d %q", code, body)
		}
		p.nextInfo(t)
	}
}
