package hcm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// FuzzLeanMatchesNetHTTP sends the same bytes to a manager on the lean
// HTTP/1.1 path and to one on net/http's server, both in front of a
// backend that answers with what it received (method, target, headers,
// body), and requires the same outcome: the same first response status
// (or none) and the same request upstream. The exceptions are the framing
// rules the lean path enforces and net/http relaxes (framingError): there
// the lean path must answer 400. Seeds: testdata/fuzz/FuzzLeanMatchesNetHTTP.
func FuzzLeanMatchesNetHTTP(f *testing.F) {
	be := backend(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var hs []string
		for k, vs := range r.Header {
			if k == "X-Request-Id" {
				continue // random per request
			}
			hs = append(hs, k+"="+strings.Join(vs, ","))
		}
		sort.Strings(hs)
		fmt.Fprintf(w, "%s %s %q cl=%d te=%v body=%q err=%v", r.Method, r.RequestURI, hs, r.ContentLength, r.TransferEncoding, b, err != nil)
	}))
	routes := rc(vhost(rt("r", "/", toCluster("a"))))
	lean := startProxy(f, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes,
		opts: Options{OnComplete: func(*StreamInfo) {}}})
	std := startProxy(f, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes,
		opts: Options{OnComplete: func(*StreamInfo) {}, NetHTTP1: true}})
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET http://x/abs HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"BREW /pot HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 16<<10 {
			return
		}
		got := firstOutcome(t, lean.addr, in)
		if end := headEnd(in); end > 0 && framingError(in[:end]) != "" {
			if !strings.HasPrefix(got, "400 ") {
				t.Fatalf("framing error %q not answered 400 by the lean path: %s", framingError(in[:end]), got)
			}
			return
		}
		want := firstOutcome(t, std.addr, in)
		// A server that closes with input unread resets the connection,
		// which may cut the body of its answer: compare the status then.
		if strings.HasSuffix(got, " truncated") || strings.HasSuffix(want, " truncated") {
			got, want = strings.Fields(got)[0], strings.Fields(want)[0]
		}
		if got != want {
			t.Fatalf("input %q:\nlean:     %s\nnet/http: %s", in, got, want)
		}
	})
}

// firstOutcome writes in and describes the first final response: its
// status and body, or how the connection ended. An incomplete head is
// half-closed after: net/http rejects a bad line as soon as it is
// complete, the lean path waits for the whole head first (timing only:
// at the end of the input both answer the same). A complete one is not:
// net/http takes a half-close for a client gone, the lean path does not.
func firstOutcome(t *testing.T, addr string, in []byte) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	c.Write(in)
	if headEnd(in) == 0 {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if isTimeout(err) {
				return "timeout"
			}
			return "no response"
		}
		if resp.StatusCode < 200 {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Sprintf("%d truncated", resp.StatusCode)
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
}
