package hcm

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkProxiedH2GET measures one h2c GET through the manager (the
// downstream HTTP/2 server) and the real cluster package to a loopback
// HTTP/1.1 backend returning 1 KiB, as the bench's client sidecar serves
// it. "serial" is one stream at a time on one connection; "parallel" runs
// GOMAXPROCS*8 concurrent streams on it. allocs/op include the client,
// the proxy and the backend.
func BenchmarkProxiedH2GET(b *testing.B) {
	p := benchProxy(b)
	b.Run("serial", func(b *testing.B) {
		c := h2cClient()
		req, _ := http.NewRequest("GET", "http://"+p.addr+"/bench", nil)
		benchGet(b, c, req) // the connection
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchGet(b, c, req)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		c := h2cClient()
		req, _ := http.NewRequest("GET", "http://"+p.addr+"/bench", nil)
		benchGet(b, c, req)
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				benchGet(b, c, req)
			}
		})
	})
}

// benchProxy starts the GET benchmarks' proxy in front of a loopback
// HTTP/1.1 backend answering 1 KiB.
func benchProxy(b *testing.B) *proxy {
	payload := strings.Repeat("x", 1024)
	be := backend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		io.WriteString(w, payload)
	}))
	return startProxy(b, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OnComplete: func(*StreamInfo) {}}})
}

// benchGet makes one request and checks benchProxy's answer.
func benchGet(b *testing.B, c *http.Client, req *http.Request) { benchRead(b)(c.Do(req)) }

// benchRead returns a check of a benchmark's response: 200 with 1 KiB.
func benchRead(b *testing.B) func(*http.Response, error) {
	return func(resp *http.Response, err error) {
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 1024 {
			b.Fatalf("got %d, %d bytes", resp.StatusCode, n)
		}
	}
}
