package hcm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Issue 18 item 8: RFC 9112 framing. A head with both Content-Length and
// Transfer-Encoding (whatever the Transfer-Encoding's spelling), or with
// an obs-fold line, is answered 400 and the connection closes; net/http
// alone would drop the Content-Length, or fold the line, and serve it.
func TestFramingRules(t *testing.T) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	const ok = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
	for name, head := range map[string]string{
		"cl then te":        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"te then cl":        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"te leading space":  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding:  chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"te tab":            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding:\tchunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"te list":           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"te mixed case":     "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-length: 7\r\ntransfer-ENCODING: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"obs-fold":          "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
		"obs-fold tab":      "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n",
		"upgrade handover":  "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"big head handover": "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 5000) + "\r\nX-A: one\r\n two\r\n\r\n",
		"after a body":      ok + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, head)
			br := bufio.NewReader(c)
			if strings.HasPrefix(head, ok) {
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("first request: %v %v", resp, err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("got %d close=%v, want 400 and close", resp.StatusCode, resp.Close)
			}
			if _, err := br.ReadByte(); err == nil {
				t.Fatal("connection still open")
			}
		})
	}
}

// The requests the lean path serves with a body keep the connection
// alive, and a body nobody read does not leak into the next request.
func TestFastPathBodies(t *testing.T) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
		routes: rc(vhost(rt("r", "/echo", toCluster("a")), rt("d", "/", &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200,
			Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "direct"}}}})))})
	reqs := []string{
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n0\r\n\r\n",
		"POST /unread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /",
		"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\ngh",
	}
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, strings.Join(reqs, ""))
	br := bufio.NewReader(c)
	var got []string
	for len(got) < len(reqs) {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 100 {
			continue
		}
		got = append(got, resp.Status[:3]+" "+string(b))
	}
	want := []string{"200 POST abc 0", "200 POST def 0", "200 direct", "200 PUT gh 0"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
