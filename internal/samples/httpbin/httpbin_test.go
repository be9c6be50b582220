package httpbin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, method, u string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestEndpoints(t *testing.T) {
	srv := httptest.NewServer(New(Config{Version: "v2"}))
	defer srv.Close()
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		hdr        map[string]string
		wantStatus int
		wantBody   []string // substrings
		wantHeader map[string]string
	}{
		{name: "get", method: "GET", path: "/get?a=1", hdr: map[string]string{"Host": "httpbin:8000", "X-Custom": "c"},
			wantStatus: 200, wantBody: []string{`"url": "http://httpbin:8000/get?a=1"`, `"a": [`, `"X-Custom": [`, `"Host": [`, `"httpbin:8000"`, `"method": "GET"`}},
		{name: "headers arrays", method: "GET", path: "/headers", hdr: map[string]string{"X-Forwarded-Client-Cert": "By=x"},
			wantStatus: 200, wantBody: []string{`"X-Forwarded-Client-Cert": [`, `"By=x"`}},
		{name: "ip from xff", method: "GET", path: "/ip", hdr: map[string]string{"X-Forwarded-For": "10.1.2.3, 10.0.0.1"},
			wantStatus: 200, wantBody: []string{`"origin": "10.1.2.3"`}},
		{name: "ip from peer", method: "GET", path: "/ip", wantStatus: 200, wantBody: []string{`"origin": "127.0.0.1"`}},
		{name: "teapot", method: "GET", path: "/status/418", wantStatus: 418, wantBody: []string{"I'm a teapot!"}},
		{name: "status any method", method: "POST", path: "/status/503", wantStatus: 503},
		{name: "status bad", method: "GET", path: "/status/abc", wantStatus: 400},
		{name: "status out of range", method: "GET", path: "/status/99", wantStatus: 400},
		{name: "redirect status", method: "GET", path: "/status/302", wantStatus: 302, wantHeader: map[string]string{"Location": "/redirect/1"}},
		{name: "post form", method: "POST", path: "/post", body: "username=jason&x=1", hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			wantStatus: 200, wantBody: []string{`"username": [`, `"jason"`, `"data": "username=jason\u0026x=1"`}},
		{name: "post json", method: "POST", path: "/post", body: `{"k":[1,2]}`, hdr: map[string]string{"Content-Type": "application/json"},
			wantStatus: 200, wantBody: []string{`"json": {`, `"k": [`}},
		{name: "post rejects GET", method: "GET", path: "/post", wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "get rejects POST", method: "POST", path: "/get", wantStatus: 405},
		{name: "anything deep", method: "PUT", path: "/anything/x/y", wantStatus: 200, wantBody: []string{`"method": "PUT"`, `/anything/x/y`}},
		{name: "response headers", method: "GET", path: "/response-headers?X-Foo=bar&X-Foo=baz", wantStatus: 200,
			wantHeader: map[string]string{"X-Foo": "bar"}, wantBody: []string{`"X-Foo": [`, `"baz"`}},
		{name: "response headers injection", method: "GET", path: "/response-headers?" + url.Values{"X": {"a\r\nB: c"}}.Encode(), wantStatus: 400},
		{name: "bytes", method: "GET", path: "/bytes/5", wantStatus: 200, wantHeader: map[string]string{"Content-Length": "5"}},
		{name: "bytes too many", method: "GET", path: "/bytes/999999999", wantStatus: 400},
		{name: "bytes negative", method: "GET", path: "/bytes/-1", wantStatus: 400},
		{name: "delay bad", method: "GET", path: "/delay/x", wantStatus: 400},
		{name: "unknown", method: "GET", path: "/nope", wantStatus: 404},
		{name: "index", method: "GET", path: "/", wantStatus: 200, wantBody: []string{"/status/"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, srv.URL+tc.path, strings.NewReader(tc.body), tc.hdr)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := resp.Header.Get(VersionHeader); got != "v2" {
				t.Errorf("%s = %q, want v2", VersionHeader, got)
			}
			for _, w := range tc.wantBody {
				if !strings.Contains(string(body), w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestClassicShape(t *testing.T) {
	srv := httptest.NewServer(New(Config{Classic: true}))
	defer srv.Close()
	_, body := do(t, "GET", srv.URL+"/headers", nil, map[string]string{"Host": "httpbin.org", "Accept": "*/*"})
	var got struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("classic /headers is not string-valued: %v\n%s", err, body)
	}
	if got.Headers["Host"] != "httpbin.org" || got.Headers["Accept"] != "*/*" {
		t.Errorf("headers %v", got.Headers)
	}
}

func TestDelay(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	start := time.Now()
	resp, _ := do(t, "GET", srv.URL+"/delay/0.3", nil, nil)
	if took := time.Since(start); resp.StatusCode != 200 || took < 300*time.Millisecond {
		t.Fatalf("status %d after %v, want 200 after >=300ms", resp.StatusCode, took)
	}
}

func TestPickStatus(t *testing.T) {
	tests := []struct {
		spec    string
		x       float64
		want    int
		wantErr bool
	}{
		{spec: "200", x: 0.99, want: 200},
		{spec: "200,500", x: 0.1, want: 200},
		{spec: "200,500", x: 0.6, want: 500},
		{spec: "200:0.9,500:0.1", x: 0.89, want: 200},
		{spec: "200:0.9,500:0.1", x: 0.95, want: 500},
		{spec: "200:0,503:1", x: 0, want: 503},
		{spec: "200:0,503:0", wantErr: true},
		{spec: "200:-1", wantErr: true},
		{spec: "200:NaN", wantErr: true},
		{spec: "200:Inf", wantErr: true},
		{spec: "", wantErr: true},
		{spec: "600", wantErr: true},
	}
	for _, tc := range tests {
		got, err := pickStatus(tc.spec, tc.x)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("pickStatus(%q, %v) = %d, %v; want %d, err=%v", tc.spec, tc.x, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestFallback(t *testing.T) {
	srv := httptest.NewServer(New(Config{Fallback: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "site")
	})}))
	defer srv.Close()
	resp, body := do(t, "GET", srv.URL+"/politics", nil, nil)
	if resp.StatusCode != 200 || string(body) != "site" {
		t.Fatalf("fallback: %d %q", resp.StatusCode, body)
	}
}
