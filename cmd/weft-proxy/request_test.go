package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// `weft-proxy request` (the native sidecar's preStop) sends one call to the
// admin port on 127.0.0.1, prints the answer and fails on an error status.
func TestRequest(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "OK\n")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	for _, tc := range []struct {
		args []string
		code int
		out  string
		req  string
	}{
		{[]string{"--debug-port", port, "POST", "drain_listeners?inboundonly&graceful"}, 0, "OK\n", "POST /drain_listeners?inboundonly&graceful "},
		{[]string{"--debug-port", port, "post", "/logging?level=debug", "x"}, 0, "OK\n", "POST /logging?level=debug x"},
		{[]string{"--debug-port", port, "GET", "missing"}, 1, "404", "GET /missing "},
		{[]string{"POST"}, 2, "", ""},
		{[]string{"--debug-port", "0", "POST", "x"}, 2, "", ""},
	} {
		got = nil
		var out, errb bytes.Buffer
		code := run(append([]string{"request"}, tc.args...), &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%v: code %d, stdout %q, stderr %q", tc.args, code, out.String(), errb.String())
		}
		if tc.req != "" && (len(got) != 1 || got[0] != tc.req) {
			t.Errorf("%v: the admin port got %q, want %q", tc.args, got, tc.req)
		}
	}
}
