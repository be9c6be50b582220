package hcm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Retire (a listener update replaced this manager, or the proxy drains)
// starts a drain period as Envoy's: an idle keep-alive connection stays
// open, its next response carries Connection: close, and CloseIdle ends
// the period by closing the connections still idle; on the lean HTTP/1.1
// path and on net/http's.
func TestRetire(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{{"fast", Options{}}, {"net/http", Options{NetHTTP1: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{fastBackend(t)}}},
				routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: tc.opts})
			get := func(c net.Conn, br *bufio.Reader) *http.Response {
				t.Helper()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%v %v", resp, err)
				}
				io.Copy(io.Discard, resp.Body)
				return resp
			}
			dial := func() (net.Conn, *bufio.Reader) {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c, bufio.NewReader(c)
			}
			used, ubr := dial() // idle through Retire, then used
			idle, ibr := dial() // idle until CloseIdle
			for _, c := range []struct {
				c  net.Conn
				br *bufio.Reader
			}{{used, ubr}, {idle, ibr}} {
				if resp := get(c.c, c.br); resp.Close {
					t.Fatal("keep-alive connection closed before Retire")
				}
			}
			p.mgr.Retire()
			// Idle connections stay open during the drain period.
			idle.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := ibr.ReadByte(); !isTimeout(err) {
				t.Fatalf("idle connection closed at Retire: %v", err)
			}
			if resp := get(used, ubr); !resp.Close {
				t.Fatal("response after Retire lacks Connection: close")
			}
			used.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := ubr.ReadByte(); err != io.EOF {
				t.Fatalf("connection not closed after its response: %v", err)
			}
			// A connection handed over after the swap is still served, once.
			late, lbr := dial()
			if resp := get(late, lbr); !resp.Close {
				t.Fatal("late response lacks Connection: close")
			}
			p.mgr.CloseIdle()
			idle.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := ibr.ReadByte(); err != io.EOF {
				t.Fatalf("idle connection not closed by CloseIdle: %v", err)
			}
		})
	}
}

// Issue 16 item 3: a retired manager's HTTP/2 connections get GOAWAY at
// once and finish the streams they have; one accepted later gets GOAWAY
// with its first response.
func TestRetireHTTP2GoAway(t *testing.T) {
	release := make(chan struct{})
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	open := func() (*http2.Framer, net.Conn) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(http2.ClientPreface))
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
		return fr, c
	}
	fr, _ := open()
	writeGet(t, fr, 1, "/slow")
	// Let the stream reach the backend, then retire.
	time.Sleep(50 * time.Millisecond)
	p.mgr.Retire()
	var goAway *http2.GoAwayFrame
	for goAway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		goAway, _ = f.(*http2.GoAwayFrame)
	}
	close(release)
	if !streamEnds(t, fr, 1) {
		t.Fatal("the in-flight stream did not finish after GOAWAY")
	}
	late, _ := open()
	writeGet(t, late, 1, "/")
	sawGoAway := false
	for {
		f, err := late.ReadFrame()
		if err != nil {
			break
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			sawGoAway = true
			break
		}
	}
	if !sawGoAway {
		t.Fatal("a connection to the retired manager got no GOAWAY")
	}
}

func writeGet(t *testing.T, fr *http2.Framer, id uint32, path string) {
	t.Helper()
	var buf bytes.Buffer
	enc := hpackEncoder(&buf)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
		enc(kv[0], kv[1])
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// streamEnds reads until stream id ends (END_STREAM or RST_STREAM).
func streamEnds(t *testing.T, fr *http2.Framer, id uint32) bool {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return false
		}
		if f.Header().StreamID != id {
			continue
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if f.StreamEnded() {
				return true
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				return true
			}
		case *http2.RSTStreamFrame:
			return false
		}
	}
}

// Issue 18 item 4: POSTs on kept-alive connections while listener updates
// replace the connection manager every few milliseconds: none fails (idle
// connections used to close at once, and a client's pool sent into them).
func TestRetireChurnLosesNoRequest(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OnComplete: func(*StreamInfo) {}}})
	// The client's pool lets a connection idle for less than the drain
	// period (the usual rule: a client's idle timeout below the server's).
	const drain = time.Second
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8,
		IdleConnTimeout: drain / 2}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var sent [8]int
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("g%d-%d", g, i)
				resp, err := c.Post("http://"+p.addr+"/", "text/plain", bytes.NewBufferString(body))
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != body {
						err = fmt.Errorf("got %q for %q", b, body)
					}
				}
				if err != nil {
					errs <- err
					return
				}
				sent[g]++
				if i%4 == 0 {
					time.Sleep(time.Millisecond) // let some connections go idle
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		time.Sleep(10 * time.Millisecond)
		old := p.swap(t)
		old.Retire()
		time.AfterFunc(drain, old.CloseIdle)
	}
	time.Sleep(drain + drain/2)
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a request failed under churn: %v", err)
	default:
	}
	total := 0
	for _, n := range sent {
		total += n
	}
	if total == 0 {
		t.Fatal("no request sent")
	}
	t.Logf("%d POSTs across 50 manager swaps, none failed", total)
}

// hpackEncoder returns a function that appends one header field to buf.
func hpackEncoder(buf *bytes.Buffer) func(name, value string) {
	e := hpack.NewEncoder(buf)
	return func(name, value string) { e.WriteField(hpack.HeaderField{Name: name, Value: value}) }
}
