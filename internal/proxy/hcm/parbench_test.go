package hcm

import (
	"net/http"
	"testing"
)

// BenchmarkProxiedGETParallel is BenchmarkProxiedGET with 32 clients at
// once on their own keep-alive connections, closer to a loaded sidecar
// (goroutines rarely find the answer already there): run it under
// `perf stat -e 'syscalls:sys_enter_*'` for system calls per request.
func BenchmarkProxiedGETParallel(b *testing.B) {
	p := benchProxy(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/bench", nil)
	b.ReportAllocs()
	b.SetParallelism(16) // × GOMAXPROCS clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchGet(b, c, req)
		}
	})
}
