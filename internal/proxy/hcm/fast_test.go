package hcm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fastBackend answers by path with the response shapes the lean path must
// frame like net/http does.
func fastBackend(t *testing.T) string {
	big := strings.Repeat("0123456789", 1000)
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small": // net/http adds Content-Length
			io.WriteString(w, "<html>hi</html>")
		case "/chunked": // unknown length, flushed: chunked
			io.WriteString(w, big[:100])
			w.(http.Flusher).Flush()
			io.WriteString(w, big)
		case "/cl":
			w.Header().Set("Content-Length", "10000")
			io.WriteString(w, big)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/teapot":
			w.Header().Set("Content-Type", "text/x-tea")
			w.WriteHeader(418)
			io.WriteString(w, "short and stout")
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", r.Method, b, len(r.Header["X-Multi"]))
		default:
			http.NotFound(w, r)
		}
	}))
}

// exchange sends raw requests on one connection (all at once: pipelined)
// and reads one response per request.
func exchange(t *testing.T, addr string, reqs []string, methods []string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, strings.Join(reqs, ""))
	br := bufio.NewReader(c)
	var out []string
	for i := range reqs {
		resp, err := http.ReadResponse(br, &http.Request{Method: methods[i]})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		var hs []string
		for _, k := range []string{"Content-Type", "Content-Length", "Connection", "Server"} {
			hs = append(hs, k+"="+resp.Header.Get(k))
		}
		var tr []string
		for k, v := range resp.Trailer {
			tr = append(tr, k+"="+strings.Join(v, ","))
		}
		sort.Strings(tr)
		out = append(out, fmt.Sprintf("%d len=%d te=%v close=%v %v trailers=%v body=%q", resp.StatusCode, resp.ContentLength,
			resp.TransferEncoding, resp.Close, hs, tr, body))
	}
	return out
}

// TestFastPathMatchesNetHTTP sends the same pipelined keep-alive
// conversation, including requests the lean path hands to net/http
// mid-connection, through a manager with and without the lean path: the
// responses must be the same.
func TestFastPathMatchesNetHTTP(t *testing.T) {
	be := fastBackend(t)
	routes := rc(vhost(rt("r", "/", toCluster("a"))))
	get := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n"
	}
	reqs := []string{
		get("/small"), get("/chunked"), get("/cl"), "HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n",
		get("/nocontent"), get("/notmodified"), get("/trailers"), get("/teapot"), get("/missing"),
		"GET /echo HTTP/1.1\nHost: x\n\n", // bare LF line ends
		// A body: net/http serves this and the rest of the connection.
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		get("/small"),
		"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	}
	methods := make([]string, len(reqs))
	for i, r := range reqs {
		methods[i] = r[:strings.IndexByte(r, ' ')]
	}
	lean := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes})
	std := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes,
		opts: Options{NetHTTP1: true}})
	got := exchange(t, lean.addr, reqs, methods)
	want := exchange(t, std.addr, reqs, methods)
	for i := range reqs {
		if got[i] != want[i] {
			t.Errorf("request %d %q:\nlean:     %s\nnet/http: %s", i, strings.SplitN(reqs[i], "\n", 2)[0], got[i], want[i])
		}
	}
	if !strings.Contains(got[len(got)-1], "close=true") {
		t.Errorf("Connection: close not honoured: %s", got[len(got)-1])
	}
	// Conversations starting with a body (served by the lean path), and
	// with requests it hands over to net/http.
	for _, first := range []string{
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		"GET /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
		"GET /echo HTTP/1.0\r\nHost: x\r\n\r\n", // 426 unless accepted
	} {
		m := []string{"POST", "GET"}
		if !strings.HasPrefix(first, "POST") {
			m[0] = "GET"
		}
		rq := []string{first, get("/small")}
		if strings.Contains(first, "HTTP/1.0") {
			rq, m = rq[:1], m[:1]
		}
		g, w := exchange(t, lean.addr, rq, m), exchange(t, std.addr, rq, m)
		if strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("%q:\nlean:     %v\nnet/http: %v", first[:30], g, w)
		}
	}
	// A head over the lean buffer goes to net/http, and the connection
	// closes after it (every head passes the lean path's framing check).
	big := "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 5000) + "\r\n\r\n"
	if g := exchange(t, lean.addr, []string{big}, []string{"GET"}); !strings.HasPrefix(g[0], "200 ") || !strings.Contains(g[0], "close=true") {
		t.Errorf("big head: %s", g[0])
	}
}

// TestFastPathBadRequests: what the lean path cannot parse, net/http
// answers (400s), never a hang or a crash.
func TestFastPathBadRequests(t *testing.T) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	for _, raw := range []string{
		"GET /small HTTP/1.1\r\n\r\n",                           // no Host
		"GET /small HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",     // two
		"GET /small HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n", // invalid field name
		"NOT HTTP AT ALL\r\n\r\n",
	} {
		resp := rawRequest(t, p.addr, raw)
		if resp.StatusCode != 400 {
			t.Errorf("%q: status %d, want 400", raw, resp.StatusCode)
		}
	}
}

// TestFastPathIdleTimeout: an idle keep-alive connection is closed after
// the connection manager's idle timeout.
func TestFastPathIdleTimeout(t *testing.T) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))),
		mutateHCM: func(h *hcmv3HCM) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(50 * time.Millisecond)}
		}})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
}

// TestFastPathWatcherUnderLoad: requests around watchDelay long, on
// keep-alive connections, exercise the hang-up watcher's start and abort
// (and its stale timer callbacks); none may stall or see another's bytes.
func TestFastPathWatcherUnderLoad(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("d")); err == nil {
			time.Sleep(d)
		}
		io.WriteString(w, r.URL.RawQuery)
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	c := client()
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := 0; i < 150; i++ {
				// Alternate requests ending near watchDelay (the watcher's
				// timer fires as they end) with short ones.
				d := 0
				if i%2 == 0 {
					d = int(watchDelay/time.Microsecond) - 300 + (i*37+g*101)%600
				}
				q := fmt.Sprintf("d=%dus&g=%d&i=%d", d, g, i)
				resp, err := c.Get("http://" + p.addr + "/?" + q)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != q {
					errs <- fmt.Errorf("got %q for %q", b, q)
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
