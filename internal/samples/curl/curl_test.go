package curl

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

func runCurl(t *testing.T, o Options) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), o, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHTTP(t *testing.T) {
	var gotHost, gotMethod, gotBody, gotCookie string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotMethod, gotCookie = r.Host, r.Method, r.Header.Get("Cookie")
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/final", http.StatusMovedPermanently)
			return
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "abc", Path: "/"})
		}
		w.Header().Set("Server", "envoy")
		io.WriteString(w, "body")
	}))
	defer srv.Close()
	dir := t.TempDir()
	jar := filepath.Join(dir, "cookies")
	tests := []struct {
		name     string
		o        Options
		wantCode int
		wantOut  string // exact, unless prefix is set
		contains []string
		check    func(t *testing.T)
	}{
		{name: "get", o: Options{URL: srv.URL + "/x"}, wantOut: "body"},
		{name: "write-out only", o: Options{URL: srv.URL, Silent: true, Output: "/dev/null", WriteOut: `%{http_code}\n`}, wantOut: "200\n"},
		{name: "host override", o: Options{URL: srv.URL, Headers: []string{"Host: httpbin.example.com"}, Output: "/dev/null"}, wantOut: "",
			check: func(t *testing.T) {
				if gotHost != "httpbin.example.com" {
					t.Errorf("host %q", gotHost)
				}
			}},
		{name: "head", o: Options{URL: srv.URL, Head: true, Silent: true}, contains: []string{"HTTP/1.1 200 OK\n", "server: envoy\n"}},
		{name: "post data", o: Options{URL: srv.URL, Data: []string{"username=jason", "passwd=password"}, Output: "/dev/null"},
			check: func(t *testing.T) {
				if gotMethod != "POST" || gotBody != "username=jason&passwd=password" {
					t.Errorf("%s %q", gotMethod, gotBody)
				}
			}},
		{name: "method", o: Options{URL: srv.URL, Method: "DELETE", Output: "/dev/null"},
			check: func(t *testing.T) {
				if gotMethod != "DELETE" {
					t.Errorf("method %s", gotMethod)
				}
			}},
		{name: "no follow", o: Options{URL: srv.URL + "/redirect", Output: "/dev/null", WriteOut: "%{http_code}"}, wantOut: "301"},
		{name: "follow", o: Options{URL: srv.URL + "/redirect", Location: true, DumpHeader: "-", Output: "/dev/null"},
			contains: []string{"HTTP/1.1 301 Moved Permanently\n", "location: /final\n", "HTTP/1.1 200 OK\n"}},
		{name: "cookie jar", o: Options{URL: srv.URL + "/login", CookieJar: jar, Output: "/dev/null"},
			check: func(t *testing.T) {
				b, _ := os.ReadFile(jar)
				if !strings.Contains(string(b), "\tsession\tabc") {
					t.Errorf("jar: %s", b)
				}
			}},
		{name: "cookie from jar", o: Options{URL: srv.URL, Cookie: jar, Output: "/dev/null"},
			check: func(t *testing.T) {
				if gotCookie != "session=abc" {
					t.Errorf("cookie %q", gotCookie)
				}
			}},
		{name: "cookie string", o: Options{URL: srv.URL, Cookie: "a=1; b=2", Output: "/dev/null"},
			check: func(t *testing.T) {
				if gotCookie != "a=1; b=2" {
					t.Errorf("cookie %q", gotCookie)
				}
			}},
		{name: "version var", o: Options{URL: srv.URL, Output: "/dev/null", WriteOut: "%{http_version} %{exitcode}%%"}, wantOut: "1.1 0%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCurl(t, tc.o)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d (stderr %q)", code, tc.wantCode, errs)
			}
			if tc.contains == nil && out != tc.wantOut {
				t.Errorf("out %q want %q", out, tc.wantOut)
			}
			for _, c := range tc.contains {
				if !strings.Contains(out, c) {
					t.Errorf("out lacks %q:\n%s", c, out)
				}
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	closed := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a := ln.Addr().String()
		ln.Close()
		return a
	}()
	emptyReply := meshtest.TCPServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Close()
	})
	hang := meshtest.TCPServer(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c)
	})
	tlsReset := meshtest.TCPServer(t, func(c net.Conn) {
		buf := make([]byte, 10)
		c.Read(buf) // the ClientHello starts, then the "black hole" hangs up
		c.Close()
	})
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	tests := []struct {
		name string
		o    Options
		code int
		msg  string
	}{
		{"refused", Options{URL: "http://" + closed + "/ip", WriteOut: "%{http_code}"}, ExitConnect, "Failed to connect"},
		{"empty reply", Options{URL: "http://" + emptyReply}, ExitEmptyReply, "Empty reply"},
		{"timeout", Options{URL: "http://" + hang, MaxTime: 200 * time.Millisecond}, ExitTimeout, "timed out"},
		{"tls reset", Options{URL: "https://" + tlsReset}, ExitTLS, "TLS"},
		{"unknown ca", Options{URL: tlsSrv.URL}, ExitCert, "certificate"},
		{"bad url", Options{URL: "http://"}, 3, "URL"},
		{"missing cacert", Options{URL: tlsSrv.URL, CACert: "/nonexistent"}, ExitUsage, "CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCurl(t, tc.o)
			if code != tc.code {
				t.Fatalf("exit %d want %d (stderr %q)", code, tc.code, errs)
			}
			if !strings.Contains(errs, tc.msg) || !strings.HasPrefix(errs, "curl: (") {
				t.Errorf("stderr %q lacks %q", errs, tc.msg)
			}
			if tc.o.WriteOut != "" && out != "000" {
				t.Errorf("write-out %q, want 000", out)
			}
			tc.o.Silent = true
			if _, _, errs := runCurl(t, tc.o); errs != "" {
				t.Errorf("-s printed %q", errs)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	host := "example.com:" + srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	addr := srv.Listener.Addr().(*net.TCPAddr)
	code, out, errs := runCurl(t, Options{URL: "https://" + host + "/", CACert: caFile, Include: true,
		Resolve: []string{host + ":" + addr.IP.String()}})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, "HTTP/2 200\n") || !strings.HasSuffix(out, "HTTP/2.0") {
		t.Errorf("out %q", out)
	}
	if code, _, _ := runCurl(t, Options{URL: srv.URL, Insecure: true, Output: "/dev/null"}); code != 0 {
		t.Errorf("-k: exit %d", code)
	}
}

// TestProxy checks requests go to an explicit proxy as absolute URIs (the
// sidecar's explicit-mode port) and https through CONNECT.
func TestProxy(t *testing.T) {
	var uri, connect string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			connect = r.Host
			w.WriteHeader(http.StatusForbidden)
			return
		}
		uri = r.RequestURI
		io.WriteString(w, "via proxy "+r.Host)
	}))
	defer proxy.Close()
	p := strings.TrimPrefix(proxy.URL, "http://")
	code, out, _ := runCurl(t, Options{URL: "http://reviews:9080/reviews/0", Proxy: p})
	if code != 0 || uri != "http://reviews:9080/reviews/0" || out != "via proxy reviews:9080" {
		t.Fatalf("exit %d uri %q out %q", code, uri, out)
	}
	code, _, _ = runCurl(t, Options{URL: "https://edition.cnn.com/politics", Proxy: p, Silent: true})
	if connect != "edition.cnn.com:443" || code == 0 {
		t.Fatalf("CONNECT %q, exit %d", connect, code)
	}
}

func TestWriteOut(t *testing.T) {
	r := &result{status: 503, proto: "2", size: 12, effective: "http://x/", remote: "127.0.0.1:80"}
	tests := []struct{ in, want string }{
		{`%{http_code}\n`, "503\n"},
		{`code=%{response_code}\tv=%{http_version}`, "code=503\tv=2"},
		{`%{size_download} %{url_effective} %{remote_ip}`, "12 http://x/ 127.0.0.1"},
		{`%{unknown}x`, "x"},
		{`%{unterminated`, "%{unterminated"},
		{`50%% \q`, `50% \q`},
	}
	for _, tc := range tests {
		if got := writeOut(tc.in, r, 0, time.Second); got != tc.want {
			t.Errorf("writeOut(%q) = %q want %q", tc.in, got, tc.want)
		}
	}
}
