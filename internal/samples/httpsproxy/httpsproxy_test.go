package httpsproxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

func TestTunnel(t *testing.T) {
	site := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	}))
	defer site.Close()
	_, sitePort, _ := net.SplitHostPort(strings.TrimPrefix(site.URL, "https://"))
	port, _ := strconv.Atoi(sitePort)
	var logs meshtest.SyncBuffer
	p := &Proxy{
		Ports:    []int{port},
		Override: map[string]string{"en.wikipedia.org": "127.0.0.1"},
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
	}
	proxy := httptest.NewServer(p)
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	tr := site.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(pu)
	tr.TLSClientConfig.ServerName = "example.com" // httptest's certificate
	c := &http.Client{Transport: tr}

	resp, err := c.Get("https://en.wikipedia.org:" + sitePort + "/wiki/Main_Page")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello from en.wikipedia.org:"+sitePort {
		t.Fatalf("through the tunnel: %d %q", resp.StatusCode, b)
	}
	tr.CloseIdleConnections()
	want := "method=CONNECT authority=en.wikipedia.org:" + sitePort + " status=200"
	// The tunnel is logged when both sides have closed.
	meshtest.Eventually(t, "access log line "+want, 5*time.Second, func() error {
		if !strings.Contains(logs.String(), want) {
			return fmt.Errorf("log:\n%s", logs.String())
		}
		return nil
	})

	// Only the allowed ports, only CONNECT, only host:port.
	for _, tc := range []struct {
		req  string
		want string
	}{
		{"CONNECT en.wikipedia.org:25 HTTP/1.1\r\nHost: en.wikipedia.org:25\r\n\r\n", "HTTP/1.1 403"},
		{"GET http://en.wikipedia.org/ HTTP/1.1\r\nHost: en.wikipedia.org\r\n\r\n", "HTTP/1.1 405"},
		{"CONNECT en.wikipedia.org HTTP/1.1\r\nHost: en.wikipedia.org\r\n\r\n", "HTTP/1.1 400"},
		{"CONNECT nothing.invalid:" + sitePort + " HTTP/1.1\r\nHost: nothing.invalid:" + sitePort + "\r\n\r\n", "HTTP/1.1 503"},
	} {
		conn, err := net.Dial("tcp", pu.Host)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, tc.req)
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.HasPrefix(line, tc.want) {
			t.Errorf("%q: got %q, want %s", tc.req, line, tc.want)
		}
	}
}
