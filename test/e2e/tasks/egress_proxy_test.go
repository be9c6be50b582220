package tasks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dialThrough returns a dialer that opens TCP to any address by CONNECT
// through an HTTP proxy (the sidecar's explicit port): the app's only way
// out in explicit mode, as iptables would be in capture mode.
func dialThrough(proxyURL string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		u, err := url.Parse(proxyURL)
		if err != nil {
			return nil, err
		}
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, u.Host)
		if err != nil {
			return nil, err
		}
		req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
		if err := req.Write(conn); err != nil {
			conn.Close()
			return nil, err
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if resp.StatusCode != 200 {
			conn.Close()
			return nil, fmt.Errorf("CONNECT %s through the sidecar: %s", addr, resp.Status)
		}
		if br.Buffered() > 0 {
			conn.Close()
			return nil, fmt.Errorf("CONNECT %s: unexpected bytes after the response", addr)
		}
		return conn, nil
	}
}

// TestEgressHTTPSProxy is Istio's "Egress via an external HTTPS proxy": the
// app sends CONNECT en.wikipedia.org:443 to a proxy outside the mesh
// (weft sample https-proxy, a real process standing in for squid); the
// mesh carries the connection to the proxy as TCP, admitted under
// REGISTRY_ONLY by a TCP ServiceEntry with the proxy's address.
func TestEgressHTTPSProxy(t *testing.T) {
	m := mesh(t)
	if m.External == nil || captureMode {
		t.Skip("the stand-in external site needs root (ports 80/443) and explicit mode")
	}
	const proxyAddr = "127.0.60.1:3128"
	var proxyLog lockedBuffer
	wiki := m.External.Names["en.wikipedia.org"]
	p := exec.Command(filepath.Join(binDir, "weft"), "sample", "https-proxy", "--listen", proxyAddr,
		"--dns-override", "en.wikipedia.org="+wiki)
	p.Stdout, p.Stderr = &proxyLog, &proxyLog
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	meshtest.Eventually(t, "the HTTPS proxy listens", 10*time.Second, func() error {
		c, err := netDialer.Dial("tcp", proxyAddr)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, proxyLog.String())
		}
		c.Close()
		return nil
	})

	// The app: HTTPS_PROXY=127.0.60.1:3128, its connections leaving
	// through its sidecar.
	app := httpsViaSidecar(t, m, "curl", m.External.CAFile)
	tr := app.Transport.(*http.Transport)
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	tr.DialContext = dialThrough(m.Workload("curl").ProxyURL())

	setOutboundPolicy(t, "REGISTRY_ONLY")
	const u = "https://en.wikipedia.org/wiki/Main_Page"
	meshtest.Eventually(t, "REGISTRY_ONLY blocks the unregistered proxy", 15*time.Second, func() error {
		if _, err := fetchSite(app, u); err == nil {
			return fmt.Errorf("reached %s through an unregistered proxy", u)
		}
		return nil
	})
	const cluster = `outbound|3128||my-company-proxy.com`
	weft.Apply(t, kit.Task("egress-https-proxy/proxy.yaml"))
	meshtest.Eventually(t, u+" through the external HTTPS proxy", 15*time.Second, func() error {
		page, err := fetchSite(app, u)
		if err != nil {
			return err
		}
		if !strings.Contains(page, "Served-On: "+wiki+":443") || !strings.Contains(page, "en.wikipedia.org (weft") {
			return fmt.Errorf("not en.wikipedia.org's server: %.300s", page)
		}
		if n := clusterStat(t, m, "curl", cluster, "upstream_cx_total"); n == 0 {
			return fmt.Errorf("the sidecar's %s opened no connection", cluster)
		}
		return nil
	})
	// The proxy's access log shows the tunnel, as squid's does.
	meshtest.Eventually(t, "the proxy logged CONNECT en.wikipedia.org:443", 10*time.Second, func() error {
		if !strings.Contains(proxyLog.String(), "method=CONNECT authority=en.wikipedia.org:443 status=200") {
			return fmt.Errorf("proxy log:\n%s", proxyLog.String())
		}
		return nil
	})
}
