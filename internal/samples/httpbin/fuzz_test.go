package httpbin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzPickStatus: no /status/{codes} spec crashes the parser, and a code
// it returns is a valid HTTP status.
func FuzzPickStatus(f *testing.F) {
	for _, s := range []string{"200", "200,500", "200:0.9,500:0.1", "418", ":", ",", "200:1e308,500:1e308", "599:0"} {
		f.Add(s, 0.5)
	}
	f.Fuzz(func(t *testing.T, spec string, x float64) {
		if x < 0 || x >= 1 || x != x {
			return
		}
		code, err := pickStatus(spec, x)
		if err == nil && (code < 100 || code > 599) {
			t.Fatalf("pickStatus(%q) = %d", spec, code)
		}
	})
}

// FuzzHandler: no request path or query crashes the handler.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/status/418", "/delay/0", "/bytes/10?seed=1", "/response-headers?a=b", "/anything/x?y=z", "/status/%zz"} {
		f.Add(s)
	}
	h := New(Config{Version: "v1"})
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.NewRequest(http.MethodGet, "http://httpbin"+target, nil)
		if err != nil || req.URL.Path == "" || req.URL.Path[0] != '/' {
			return
		}
		if len(req.URL.Path) > 6 && req.URL.Path[:7] == "/delay/" {
			return // sleeps by design
		}
		req.Body = http.NoBody // as a server request has
		h.ServeHTTP(httptest.NewRecorder(), req)
	})
}
