package cluster

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"testing"
)

// TestWriteHeadMatchesRequestWrite: the fast head writer produces exactly
// the bytes Request.Write does (without the default User-Agent), or
// declines.
func TestWriteHeadMatchesRequestWrite(t *testing.T) {
	mk := func(method, target string, h http.Header, mod func(*http.Request)) *http.Request {
		r, err := http.NewRequest(method, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			r.Header[k] = v
		}
		if mod != nil {
			mod(r)
		}
		return r
	}
	cases := []struct {
		name string
		req  *http.Request
		fast bool
	}{
		{"get", mk("GET", "http://svc:8080/a/b?x=1&y=%20", http.Header{"Accept": {"*/*"}, "X-Multi": {"1", "2"}, "User-Agent": {"curl/8"}}, nil), true},
		{"no ua", mk("GET", "http://svc/", http.Header{"X-Request-Id": {"abc"}}, nil), true},
		{"empty ua", mk("GET", "http://svc/", http.Header{"User-Agent": {""}}, nil), true},
		{"head", mk("HEAD", "http://svc/h", nil, nil), true},
		{"delete", mk("DELETE", "http://svc/d", nil, nil), true},
		{"post no body", mk("POST", "http://svc/p", nil, func(r *http.Request) { r.Body = http.NoBody }), true},
		{"close", mk("GET", "http://svc/", nil, func(r *http.Request) { r.Close = true }), true},
		{"close already", mk("GET", "http://svc/", http.Header{"Connection": {"close"}}, func(r *http.Request) { r.Close = true }), true},
		{"host override", mk("GET", "http://svc/", nil, func(r *http.Request) { r.Host = "other.example:81" }), true},
		{"opaque", mk("GET", "http://svc/", nil, func(r *http.Request) { r.URL.Opaque = "/rewritten/%2F" }), true},
		{"excluded headers", mk("GET", "http://svc/", http.Header{"Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}}, nil), true},
		{"newline value", mk("GET", "http://svc/", http.Header{"X-Bad": {"a\r\nb"}}, nil), false},
		{"padded value", mk("GET", "http://svc/", http.Header{"X-Pad": {" a "}}, nil), false},
		{"bad name", mk("GET", "http://svc/", http.Header{"Bad Name": {"v"}}, nil), false},
		{"unicode host", mk("GET", "http://svc/", nil, func(r *http.Request) { r.Host = "bücher.example" }), false},
		{"body", mk("PUT", "http://svc/", nil, func(r *http.Request) { r.Body = http.NoBody; r.ContentLength = 3 }), false},
		{"connect", mk("CONNECT", "http://svc:443", nil, func(r *http.Request) { r.URL = &url.URL{Host: "svc:443"} }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var fast bytes.Buffer
			bw := bufio.NewWriter(&fast)
			ok := writeHead(bw, c.req)
			bw.Flush()
			if ok != c.fast {
				t.Fatalf("writeHead = %v, want %v (wrote %q)", ok, c.fast, fast.String())
			}
			if !ok {
				if fast.Len() != 0 {
					t.Fatalf("declined but wrote %q", fast.String())
				}
				return
			}
			var want bytes.Buffer
			if err := noDefaultUA(c.req).Write(&want); err != nil {
				t.Fatal(err)
			}
			if fast.String() != want.String() {
				t.Errorf("fast:\n%q\nRequest.Write:\n%q", fast.String(), want.String())
			}
		})
	}
}
