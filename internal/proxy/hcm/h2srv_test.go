package hcm

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// -hcm.ownh2 runs the package's tests with weft's own HTTP/2 server
// (Options.OwnHTTP2) in every test proxy.
var ownH2Flag = flag.Bool("hcm.ownh2", false, "serve HTTP/2 with the own server in test proxies")

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
