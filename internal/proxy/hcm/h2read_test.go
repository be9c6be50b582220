//go:build linux

package hcm

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
)

// tcpPair is a connected loopback pair: the server end wrapped as the
// manager wraps it, the client end raw.
func tcpPair(t *testing.T) (*conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); sv.Close() })
	return &conn{Conn: sv, info: &downstream.Info{}}, cl
}

func TestH2ConnBatchesReads(t *testing.T) {
	cc, cl := tcpPair(t)
	c, ok := h2Conn(cc).(*h2conn)
	if !ok {
		t.Fatalf("plain TCP not wrapped: %T", h2Conn(cc))
	}
	// Two small frames in one segment: the 9-byte header reads and the
	// payload reads come from one socket read, and the buffer goes back
	// to the pool once they are consumed.
	msg := "123456789abc123456789defg"
	if _, err := cl.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, n := range []int{9, 3, 9, 4} {
		p := make([]byte, n)
		if _, err := io.ReadFull(c, p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
		if len(got) < len(msg) && c.buf == nil {
			// Every byte after the first read was buffered together
			// (loopback delivers the one write as one segment).
			t.Fatalf("buffer released with %d of %d bytes read", len(got), len(msg))
		}
	}
	if string(got) != msg {
		t.Fatalf("read %q, want %q", got, msg)
	}
	if c.buf != nil {
		t.Fatal("an idle connection still holds its read buffer")
	}
	// A large read with nothing buffered goes straight to the socket.
	big := strings.Repeat("x", 4000)
	go cl.Write([]byte(big))
	p := make([]byte, len(big))
	if _, err := io.ReadFull(c, p); err != nil || string(p) != big {
		t.Fatalf("big read: %v", err)
	}
	if c.buf != nil {
		t.Fatal("direct read left a buffer")
	}
	// A deadline ends a read waiting for bytes, as on the socket.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 9)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	// EOF when the peer closes; the buffer is given back.
	cl.Close()
	if _, err := c.Read(make([]byte, 9)); err != io.EOF {
		t.Fatalf("after the peer closed: %v", err)
	}
	if c.buf != nil {
		t.Fatal("buffer held after EOF")
	}
	// Close ends a read, whether it waits already or not.
	cc2, _ := tcpPair(t)
	c2 := h2Conn(cc2)
	done := make(chan error, 1)
	go func() { _, err := c2.Read(make([]byte, 9)); done <- err }()
	c2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read not ended by Close")
	}
}

// The sniffer's peeked bytes are read first, then the socket.
func TestH2ConnReplaysSniffedBytes(t *testing.T) {
	cc, cl := tcpPair(t)
	cl.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest"))
	br := bufio.NewReaderSize(cc.Conn, 64)
	if !sniffH2(br) {
		t.Fatal("preface not sniffed")
	}
	cc.r = br
	c := h2Conn(cc)
	all := make([]byte, len(h2Preface)+4+5)
	go cl.Write([]byte("after"))
	if _, err := io.ReadFull(c, all); err != nil {
		t.Fatal(err)
	}
	if want := string(h2Preface) + "restafter"; string(all) != want {
		t.Fatalf("read %q, want %q", all, want)
	}
}

// An h2c request whose HEADERS end the stream reaches the upstream as a
// request without a body: no Transfer-Encoding, no Content-Length (x/net
// gives the handler a body anyway; forwarding it made every h2c GET a
// general-path upstream write with a body probe).
func TestH2CRequestWithoutBody(t *testing.T) {
	type seen struct {
		te   []string
		cl   int64
		body string
	}
	got := make(chan seen, 4)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.TransferEncoding, r.ContentLength, string(b)}
		io.WriteString(w, "ok")
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	c := h2cClient()
	for _, tc := range []struct {
		method, body string
	}{{"GET", ""}, {"POST", ""}, {"POST", "hello"}} {
		var body io.Reader
		if tc.body != "" || tc.method == "POST" {
			body = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(tc.method, "http://"+p.addr+"/x", body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %q: status %d", tc.method, tc.body, resp.StatusCode)
		}
		s := <-got
		if s.body != tc.body || s.cl != int64(len(tc.body)) || len(s.te) != 0 {
			t.Fatalf("%s %q: upstream saw body %q, content-length %d, transfer-encoding %v", tc.method, tc.body, s.body, s.cl, s.te)
		}
	}
}
