package hcm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Retire (a listener update replaced this manager) closes idle keep-alive
// connections at once and ends new ones after their first response, on the
// lean HTTP/1.1 path and on net/http's.
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
			idle, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			ibr := bufio.NewReader(idle)
			if resp := get(idle, ibr); resp.Close {
				t.Fatal("keep-alive connection closed before Retire")
			}
			p.mgr.Retire()
			if _, err := ibr.ReadByte(); err != io.EOF {
				t.Fatalf("idle connection not closed by Retire: %v", err)
			}
			// A connection handed over after the swap is still served, once.
			late, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer late.Close()
			lbr := bufio.NewReader(late)
			if resp := get(late, lbr); !resp.Close {
				t.Fatal("response after Retire lacks Connection: close")
			}
			if _, err := lbr.ReadByte(); err != io.EOF {
				t.Fatalf("connection not closed after its response: %v", err)
			}
		})
	}
}
