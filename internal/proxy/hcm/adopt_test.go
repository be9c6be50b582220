package hcm

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// TestAdoptedResponseHeaders: the lean path's writer takes an HTTP/1
// upstream response's header map instead of a copy and reuses it for a
// later response head (filter.HeaderAdopter, h1head.PutHeader). Every
// response must carry exactly its own upstream fields and the route's
// additions, none of another response's, on keep-alive connections
// served concurrently (under -race a map reused while still read fails).
func TestAdoptedResponseHeaders(t *testing.T) {
	addr := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("n")
		h := w.Header()
		h.Set("X-Req", n)
		if r.URL.Path == "/a" {
			h.Set("X-Only-A", "a"+n)
			h.Add("Set-Cookie", "a=1")
			h.Add("Set-Cookie", "b=2")
		} else {
			h.Set("X-Only-B", "b"+n)
		}
		h.Set("Content-Length", strconv.Itoa(len(n)))
		io.WriteString(w, n)
	}))
	route := rt("r", "/", toCluster("a"))
	route.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-resp", Value: "route"}}}
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{addr}}}, routes: rc(vhost(route)),
		opts: Options{OnComplete: func(*StreamInfo) {}}})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for i := 0; i < 150; i++ {
				n := fmt.Sprint(g*1000 + i)
				path, own, want, other := "/a", "X-Only-A", "a"+n, "X-Only-B"
				if (g+i)%2 == 1 {
					path, own, want, other = "/b", "X-Only-B", "b"+n, "X-Only-A"
				}
				resp, err := c.Get("http://" + p.addr + path + "?n=" + n)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				h := resp.Header
				switch {
				case string(body) != n || h.Get("X-Req") != n:
					errs <- fmt.Errorf("%s?n=%s: body %q, X-Req %q", path, n, body, h.Get("X-Req"))
				case h.Get(own) != want:
					errs <- fmt.Errorf("%s?n=%s: %s = %q", path, n, own, h.Get(own))
				case h.Get(other) != "":
					errs <- fmt.Errorf("%s?n=%s: another response's field %s = %q", path, n, other, h.Get(other))
				case h.Get("X-Resp") != "route" || len(h["X-Resp"]) != 1:
					errs <- fmt.Errorf("%s?n=%s: route field X-Resp = %q", path, n, h["X-Resp"])
				case path == "/a" && len(h["Set-Cookie"]) != 2, path == "/b" && len(h["Set-Cookie"]) != 0:
					errs <- fmt.Errorf("%s?n=%s: Set-Cookie %q", path, n, h["Set-Cookie"])
				default:
					continue
				}
				return
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
