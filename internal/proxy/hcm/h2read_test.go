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

// frame builds an HTTP/2 frame header and payload.
func frame(typ, flags byte, stream uint32, payload string) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
	return append(b, payload...)
}

func TestEndsWithOpenHeaders(t *testing.T) {
	const hdrs, data, settings = 0x1, 0x0, 0x4
	const endStream, endHeaders = 0x1, 0x4
	cat := func(fs ...[]byte) []byte {
		var b []byte
		for _, f := range fs {
			b = append(b, f...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"headers", frame(hdrs, endHeaders, 1, "abc"), true},
		{"after other frames", cat(frame(settings, 0, 0, ""), frame(data, endStream, 3, "xy"), frame(hdrs, endHeaders, 5, "abc")), true},
		{"headers ending the stream", frame(hdrs, endHeaders|endStream, 1, "abc"), false},
		{"continuation follows", frame(hdrs, 0, 1, "abc"), false},
		{"data last", cat(frame(hdrs, endHeaders, 1, "abc"), frame(data, 0, 1, "x")), false},
		{"partial frame", frame(hdrs, endHeaders, 1, "abc")[:10], false},
		{"trailing bytes", append(frame(hdrs, endHeaders, 1, "abc"), 0), false},
		{"empty", nil, false},
	} {
		if got := endsWithOpenHeaders(tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// readAtLeast reads from c until it has n bytes, returning how many reads
// it took.
func readAtLeast(t *testing.T, c net.Conn, n int) ([]byte, int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	reads := 0
	for len(got) < n {
		b := make([]byte, 4096)
		k, err := c.Read(b)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), n, err)
		}
		got, reads = append(got, b[:k]...), reads+1
	}
	return got, reads
}

func TestH2ConnCoalescesResponse(t *testing.T) {
	cc, cl := tcpPair(t)
	c := h2Conn(cc).(*h2conn)
	headers := frame(0x1, 0x4, 1, "status-200")
	data := frame(0x0, 0x1, 1, "body")

	// Expected DATA: the HEADERS wait for it and leave in one write.
	c.expectData()
	if n, err := c.Write(headers); n != len(headers) || err != nil {
		t.Fatalf("write headers: %d, %v", n, err)
	}
	if len(c.held) != len(headers) {
		t.Fatalf("headers not held (%d bytes held)", len(c.held))
	}
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("write data: %d, %v", n, err)
	}
	got, reads := readAtLeast(t, cl, len(headers)+len(data))
	if string(got) != string(headers)+string(data) || reads != 1 {
		t.Fatalf("client read %q in %d reads", got, reads)
	}

	// Nothing expected: written at once.
	if c.Write(headers); len(c.held) != 0 {
		t.Fatal("headers held without expectData")
	}
	if got, _ := readAtLeast(t, cl, len(headers)); string(got) != string(headers) {
		t.Fatalf("client read %q", got)
	}

	// Expected DATA that never comes: the timer sends the HEADERS.
	c.expectData()
	c.Write(headers)
	if got, _ := readAtLeast(t, cl, len(headers)); string(got) != string(headers) {
		t.Fatalf("client read %q", got)
	}

	// A HEADERS frame that ends its stream is never held.
	c.expectData()
	if c.Write(frame(0x1, 0x5, 3, "x")); len(c.held) != 0 {
		t.Fatal("END_STREAM headers held")
	}
	readAtLeast(t, cl, 10)

	// That hint went unused; once older than h2Hold it holds nothing
	// (here: a streaming response's HEADERS, flushed on their own).
	now := time.Now()
	c.now = func() time.Time { return now.Add(2 * h2Hold) }
	if c.Write(headers); len(c.held) != 0 {
		t.Fatal("headers held by a stale hint")
	}
	if c.pending.Load() != 0 {
		t.Fatalf("%d stale hints kept", c.pending.Load())
	}
	c.Close()
}

// Close ends a write blocked on a client that stopped reading (x/net
// closes the connection to end such a write).
func TestH2ConnCloseEndsBlockedWrite(t *testing.T) {
	cc, _ := tcpPair(t)
	c := h2Conn(cc).(*h2conn)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 256<<10)
		close(started)
		for {
			if _, err := c.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	<-started
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked behind a write")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("write not ended by Close")
	}
}
