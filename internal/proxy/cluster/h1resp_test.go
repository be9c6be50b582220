package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
	"testing/iotest"
)

// respOutcome is what a reader of a response stream sees: each response's
// fields and body, and whether a read failed.
type respOutcome struct {
	Status         string
	StatusCode     int
	Proto          string
	Major, Minor   int
	Header         http.Header
	ContentLength  int64
	TE             []string
	Close          bool
	Trailer        http.Header
	Body           string
	BodyErr, Error bool
	Request        bool
}

// readAll reads up to three responses from in, as the pool does.
func readAll(in []byte, method string, oneByte bool, read func(*bufio.Reader, *http.Request) (*http.Response, error)) []respOutcome {
	var r io.Reader = bytes.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	br := bufio.NewReaderSize(r, 4096)
	req := &http.Request{Method: method}
	var out []respOutcome
	for range 3 {
		resp, err := read(br, req)
		if err != nil {
			out = append(out, respOutcome{Error: true})
			break
		}
		body, berr := io.ReadAll(resp.Body)
		out = append(out, respOutcome{resp.Status, resp.StatusCode, resp.Proto, resp.ProtoMajor, resp.ProtoMinor,
			resp.Header, resp.ContentLength, resp.TransferEncoding, resp.Close, resp.Trailer,
			string(body), berr != nil, false, resp.Request == req})
		if berr != nil || resp.Close {
			break
		}
	}
	return out
}

func checkSame(t *testing.T, in []byte, method string, oneByte bool) {
	t.Helper()
	want := readAll(in, method, oneByte, http.ReadResponse)
	got := readAll(in, method, oneByte, readResponse)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %q (one byte reads %v):\n got %+v\nwant %+v", method, in, oneByte, got, want)
	}
}

var respSeeds = []struct {
	in   string
	fast bool // the own parser takes the first head (GET)
}{
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", true},
	{"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\nX-A:  2 \r\n\r\nhiHTTP/1.1 204 No Content\r\n\r\n", true},
	{"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true},
	{"HTTP/1.1 200 OK\r\n\r\nclose-delimited body", true},
	{"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.0 200 OK\r\n\r\n", true},
	{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", true},
	{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc", true},
	{"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 3\r\n\r\nabc", true},
	{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
	{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw", true},
	{"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n", true},
	{"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", true},
	{"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", true},
	{"HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 1\r\n\r\n1", true},
	{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true},
	{"HTTP/1.1 200 OK\r\nX-Utf8: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", true},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nBad Key: a\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", false},
	{"HTTP/1.1 200 OK\nContent-Length: 0\n\n", false},
	{"HTTP/1.1  200 OK\r\n\r\n", false},
	{"HTTP/1.1 2000 OK\r\n\r\n", false},
	{"HTTP/1.1 +99 OK\r\n\r\n", false},
	{"HTTP/2.0 200 OK\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\n", false},
	{"", false},
}

// TestReadResponseMatchesNetHTTP: the own parser gives what
// http.ReadResponse gives for the same bytes, for GET and HEAD, with the
// whole head buffered and read a byte at a time; the common heads take
// the own path (else the test would compare net/http with itself).
func TestReadResponseMatchesNetHTTP(t *testing.T) {
	for _, s := range respSeeds {
		for _, m := range []string{"GET", "HEAD"} {
			checkSame(t, []byte(s.in), m, false)
			checkSame(t, []byte(s.in), m, true)
		}
		br := bufio.NewReaderSize(bytes.NewReader([]byte(s.in)), 4096)
		br.Peek(1)
		before := br.Buffered()
		resp := parseResponse(br, &http.Request{Method: "GET"})
		if (resp != nil) != s.fast {
			t.Errorf("%q: own path taken %v, want %v", s.in, resp != nil, s.fast)
		}
		if resp == nil && br.Buffered() != before {
			t.Errorf("%q: fell back after consuming bytes", s.in)
		}
	}
}

// FuzzReadResponseMatchesNetHTTP: any bytes give the same responses (or
// both an error) from the own parser and from http.ReadResponse.
// Seeds: respSeeds and testdata/fuzz/FuzzReadResponseMatchesNetHTTP.
func FuzzReadResponseMatchesNetHTTP(f *testing.F) {
	for _, s := range respSeeds {
		f.Add([]byte(s.in), false, false)
		f.Add([]byte(s.in), true, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, head, oneByte bool) {
		m := "GET"
		if head {
			m = "HEAD"
		}
		checkSame(t, in, m, oneByte)
	})
}

var benchResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Date: Sun, 06 Dec 2026 12:00:00 GMT\r\nContent-Length: 13\r\nX-Backend: b1\r\n\r\nhello, world\n")

// BenchmarkReadResponse reads a typical upstream response (head and
// body) with net/http and with the own parser.
func BenchmarkReadResponse(b *testing.B) {
	for _, c := range []struct {
		name string
		read func(*bufio.Reader, *http.Request) (*http.Response, error)
	}{{"nethttp", http.ReadResponse}, {"own", readResponse}} {
		b.Run(c.name, func(b *testing.B) {
			r := bytes.NewReader(benchResponse)
			br := bufio.NewReaderSize(r, 4096)
			req := &http.Request{Method: "GET"}
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(benchResponse)
				br.Reset(r)
				resp, err := c.read(br, req)
				if err != nil {
					b.Fatal(err)
				}
				if n, _ := io.ReadFull(resp.Body, buf[:13]); n != 13 {
					b.Fatal(fmt.Sprint("short body ", n))
				}
			}
		})
	}
}
