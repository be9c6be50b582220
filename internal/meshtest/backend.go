package meshtest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Backends: small real servers on loopback for the proxy and end-to-end
// tests to put behind a proxy. Each listens on the address given (or
// 127.0.0.1 with an ephemeral port), serves until t ends and returns the
// address it listens on.

// TCPServer accepts connections on 127.0.0.1 and hands each to serve in a
// goroutine of its own; the connection is closed when serve returns.
func TCPServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	return TCPServerAt(t, "127.0.0.1:0", serve)
}

// TCPServerAt is TCPServer on addr.
func TCPServerAt(t testing.TB, addr string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TCPEcho writes greeting once on each connection, then echoes every byte
// back until the client closes.
func TCPEcho(t testing.TB, greeting string) string {
	t.Helper()
	return TCPServer(t, func(c net.Conn) {
		io.WriteString(c, greeting)
		io.Copy(c, c)
	})
}

// HTTPHeadersAt serves httpbin's /headers on addr, for any path: the
// request's headers as JSON ({"headers": {"Name": "v1,v2"}}).
func HTTPHeadersAt(t testing.TB, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k, v := range r.Header {
			h[k] = strings.Join(v, ",")
		}
		json.NewEncoder(w).Encode(map[string]any{"headers": h})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
