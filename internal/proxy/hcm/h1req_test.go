package hcm

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"testing"
	"testing/iotest"
)

// reqOutcome is what the lean path sees of a request.
type reqOutcome struct {
	Method, URL, RequestURI, Proto, Host string
	Major, Minor                         int
	Header                               http.Header
	ContentLength                        int64
	TE                                   []string
	Close                                bool
	Trailer                              http.Header
	Body                                 string
	BodyErr, Error                       bool
}

// readReqs reads up to three requests from in, each body to its end.
func readReqs(in []byte, oneByte bool, read func(*bufio.Reader) (*http.Request, error)) []reqOutcome {
	var r io.Reader = bytes.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	br := bufio.NewReaderSize(r, 4096)
	var out []reqOutcome
	for range 3 {
		req, err := read(br)
		if err != nil {
			out = append(out, reqOutcome{Error: true})
			break
		}
		body, berr := io.ReadAll(req.Body)
		out = append(out, reqOutcome{req.Method, req.URL.String(), req.RequestURI, req.Proto, req.Host,
			req.ProtoMajor, req.ProtoMinor, req.Header, req.ContentLength, req.TransferEncoding, req.Close,
			req.Trailer, string(body), berr != nil, false})
		if berr != nil {
			break
		}
	}
	return out
}

func checkSameRequest(t *testing.T, in []byte, oneByte bool) {
	t.Helper()
	want := readReqs(in, oneByte, http.ReadRequest)
	got := readReqs(in, oneByte, readRequest)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q (one byte reads %v):\n got %+v\nwant %+v", in, oneByte, got, want)
	}
}

var reqSeeds = []struct {
	in   string
	fast bool // the own parser takes the first head
}{
	{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
	{"GET /a?b=c&d=%20 HTTP/1.1\r\nhost: x:80\r\nx-a: 1\r\nX-A:  2 \r\nUser-Agent: wrk\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n", true},
	{"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n", true},
	{"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nshort", true},
	{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nPragma: no-cache\r\n\r\n", true},
	{"GET / HTTP/1.1\r\n\r\n", true},
	{"GET //x/../y HTTP/1.1\r\nHost: x\r\n\r\n", true},
	{"GET / HTTP/1.1\r\nHost: x\r\nTrailer: X-T\r\n\r\n", true},
	{"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", true},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
	{"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", false},
	{"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", false},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", false},
	{"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", false},
	{"GET / HTTP/1.0\r\nHost: x\r\n\r\n", false},
	{"GET http://x/abs HTTP/1.1\r\nHost: y\r\n\r\n", false},
	{"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", false},
	{"GET / HTTP/1.1\nHost: x\n\n", false},
	{"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", false},
	{"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", false},
	{"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n", false},
	{"GET / HTTP/1.1\r\nHost: x\r\n", false},
	{"", false},
}

// TestReadRequestMatchesNetHTTP: the own parser gives what
// http.ReadRequest gives for the same bytes, whole and read a byte at a
// time; the common heads take the own path.
func TestReadRequestMatchesNetHTTP(t *testing.T) {
	for _, s := range reqSeeds {
		checkSameRequest(t, []byte(s.in), false)
		checkSameRequest(t, []byte(s.in), true)
		// Own path taken as expected, and a fall-back consumed nothing.
		br := bufio.NewReaderSize(bytes.NewReader([]byte(s.in)), 4096)
		br.Peek(1)
		n := br.Buffered()
		if own := parseRequest(br) != nil; own != s.fast || !own && br.Buffered() != n {
			t.Errorf("%q: own path %v, want %v; %d of %d bytes left", s.in, own, s.fast, br.Buffered(), n)
		}
	}
}

// FuzzReadRequestMatchesNetHTTP: any bytes give the same requests (or
// both an error) from the own parser and from http.ReadRequest.
func FuzzReadRequestMatchesNetHTTP(f *testing.F) {
	for _, s := range reqSeeds {
		f.Add([]byte(s.in), false)
		f.Add([]byte(s.in), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, oneByte bool) {
		checkSameRequest(t, in, oneByte)
	})
}

var benchRequest = []byte("GET /echo?x=1 HTTP/1.1\r\nHost: backend.default.svc:8080\r\nUser-Agent: bench/1\r\n" +
	"Accept: */*\r\nX-Request-Id: 6f1c2b9e-2f7a-4a53-9f1e-0c0f4d7b8a11\r\n\r\n")

// BenchmarkReadRequest reads a typical request head with net/http and
// with the own parser.
func BenchmarkReadRequest(b *testing.B) {
	for _, c := range []struct {
		name string
		read func(*bufio.Reader) (*http.Request, error)
	}{{"nethttp", http.ReadRequest}, {"own", readRequest}} {
		b.Run(c.name, func(b *testing.B) {
			r := bytes.NewReader(benchRequest)
			br := bufio.NewReaderSize(r, 4096)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(benchRequest)
				br.Reset(r)
				if _, err := c.read(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
