package hcm

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The package's test proxies serve HTTP/2 with weft's own server
// (Options.OwnHTTP2), weft-proxy's default; -hcm.ownh2=false runs them
// on x/net's. Tests that compare the two set the option themselves.
var ownH2Flag = flag.Bool("hcm.ownh2", true, "serve HTTP/2 with the own server in test proxies")

// Bodies larger than every flow-control window, both ways and on many
// streams at once, through the own server: what goes up comes back.
func TestOwnH2LargeBodies(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	for _, gateway := range []bool{false, true} { // 1 MiB and 64 KiB stream windows
		t.Run(fmt.Sprint("gateway=", gateway), func(t *testing.T) { largeBodies(t, be, gateway) })
	}
}

func largeBodies(t *testing.T, be string, gateway bool) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OwnHTTP2: true, OnComplete: func(*StreamInfo) {}},
		mutateHCM: func(h *hcmv3HCM) { h.UseRemoteAddress = wrapperspb.Bool(gateway) }})
	c := h2cClient()
	c.Timeout = 60 * time.Second
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte('a' + i)}, (1<<20)*(1+i%4)+i*1000)
			resp, err := c.Post("http://"+p.addr+"/up", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
				errs <- fmt.Errorf("stream %d: status %d, %d of %d bytes back, %v", i, resp.StatusCode, len(got), len(body), err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// h2 over TLS (ALPN) is served by the own server too, with the
// connection's TLS state on the request.
func TestOwnH2OverTLS(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OwnHTTP2: true, OnComplete: func(*StreamInfo) {}},
		tls: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"h2", "http/1.1"}}})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := 0; i < 3; i++ {
		resp, err := c.Get("https://" + p.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != "https" {
			t.Fatalf("got %d %s %q", resp.StatusCode, resp.Proto, b)
		}
	}
	p.mgr.own.mu.Lock()
	n := len(p.mgr.own.conns)
	p.mgr.own.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d connections on the own server, want 1", n)
	}
}
