package command

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestSampleCurl(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("end-user") != "jason" {
			w.WriteHeader(http.StatusForbidden)
		}
		io.WriteString(w, "hi")
	}))
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"curl", srv.URL + "/ip", "-s", "-o", "/dev/null", "-w", `%{http_code}\n`, "-H", "end-user: jason"}, 0, "200\n", ""},
		{[]string{"curl", "-sS", srv.URL, "-w", " %{http_code}"}, 0, "hi 403", ""},
		{[]string{"curl", "http://" + closed, "-s", "-w", "%{http_code}"}, 7, "000", ""},
		{[]string{"curl", "http://" + closed}, 7, "", "curl: (7) Failed to connect"},
		{[]string{"curl", "-sf", srv.URL, "-m", "2.5", "-w", "%{http_code}"}, 22, "403", ""},
		{[]string{"curl", "-sSf", srv.URL, "--max-time", "2s"}, 22, "", "curl: (22) The requested URL returned error: 403"},
		{[]string{"curl", srv.URL, "-m", "-1"}, 1, "", "negative time"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := Main("weft-sample", tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || out.String() != tc.stdout || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%v: exit %d out %q err %q; want %d %q %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestSampleNc(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		c.Write(append([]byte("one "), b...))
	}()
	var out, errb bytes.Buffer
	code := Main("weft-sample", []string{"nc", ln.Addr().String()}, strings.NewReader("hello\n"), &out, &errb)
	if code != 0 || out.String() != "one hello\n" {
		t.Fatalf("exit %d out %q err %q", code, out.String(), errb.String())
	}
}

func TestSampleLoad(t *testing.T) {
	var (
		mu   sync.Mutex // two connections: handlers run concurrently
		host string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		host = r.Host
		mu.Unlock()
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := Main("weft-sample", []string{"load", "-c", "2", "--qps", "0", "-n", "10", "-H", "Host: httpbin:8000", srv.URL + "/get"}, strings.NewReader(""), &out, &errb)
	mu.Lock()
	defer mu.Unlock()
	if code != 0 || !strings.Contains(out.String(), "Code 200 : 10 (100.0 %)") || host != "httpbin:8000" {
		t.Fatalf("exit %d host %q out %q err %q", code, host, out.String(), errb.String())
	}
}
