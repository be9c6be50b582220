package nc

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// echo serves "echo: <line>" per line until EOF.
func echo(t *testing.T) string {
	return meshtest.TCPServer(t, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			io.WriteString(c, "echo: "+sc.Text()+"\n")
		}
	})
}

// connectProxy is a minimal CONNECT proxy; it refuses the port "1".
func connectProxy(t *testing.T) string {
	return meshtest.TCPServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect || strings.HasSuffix(req.Host, ":1") {
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
			return
		}
		up, err := net.Dial("tcp", req.Host)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
			return
		}
		defer up.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, up)
	})
}

func TestRun(t *testing.T) {
	target := echo(t)
	proxy := connectProxy(t)
	tests := []struct {
		name    string
		o       Options
		want    string
		wantErr string
	}{
		{"direct", Options{Address: target}, "echo: port 9000\n", ""},
		{"via proxy", Options{Address: target, Proxy: proxy}, "echo: port 9000\n", ""},
		{"proxy refuses", Options{Address: "127.0.0.1:1", Proxy: proxy}, "", "403"},
		{"refused", Options{Address: "127.0.0.1:1"}, "", "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := Run(ctx, tc.o, strings.NewReader("port 9000\n"), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || out.String() != tc.want {
				t.Fatalf("out %q err %v", out.String(), err)
			}
		})
	}
}
