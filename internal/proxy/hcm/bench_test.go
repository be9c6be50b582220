package hcm

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkProxiedGET measures one keep-alive HTTP/1.1 GET through the
// manager and the real cluster package to a loopback backend returning
// 1 KiB. allocs/op include the client, the proxy and the backend.
func BenchmarkProxiedGET(b *testing.B) {
	p := benchProxy(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/bench", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchGet(b, c, req)
	}
}

// BenchmarkDirectGET is the same client and backend without the proxy, to
// separate the proxy's cost from the harness's.
func BenchmarkDirectGET(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	be := backend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		io.WriteString(w, payload)
	}))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	req, _ := http.NewRequest("GET", "http://"+be+"/bench", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkProxiedPOST is a keep-alive HTTP/1.1 POST of 1 KiB echoed back,
// on the lean path and on net/http's (the lean path serves bodies since
// it checks every request head).
func BenchmarkProxiedPOST(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	be := backend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // all of it first: Go's server ends the body once the response head is out
		w.Header().Set("Content-Length", "1024")
		w.Write(b)
	}))
	for _, tc := range []struct {
		name string
		opts Options
	}{{"lean", Options{OnComplete: func(*StreamInfo) {}}}, {"net/http", Options{OnComplete: func(*StreamInfo) {}, NetHTTP1: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			p := startProxy(b, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
				routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: tc.opts})
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchRead(b)(c.Post("http://"+p.addr+"/bench", "text/plain", strings.NewReader(payload)))
			}
		})
	}
}
