package tasks

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// Sidecar features beyond scoping, with config written for these tests:
// egress listeners on unix domain sockets and outboundTrafficPolicy's
// egressProxy. Clients are sidecar-only workloads on 127.0.30.219-221.

// A Sidecar egress listener bound to a unix socket (port 0) makes the
// proxy listen on that socket: the app sends HTTP over it and the proxy
// routes by Host to the services the listener imports; other hosts get
// the catch-all (REGISTRY_ONLY: 502).
func TestSidecarUnixEgress(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	startBackend(t, m, "conf-merge-v1", "conf-merge", "v1", "", 210)
	startBackend(t, m, "conf-merge-v2", "conf-merge", "v2", "", 211)
	weft.Apply(t, mergeConfig)
	client(t, m, "conf-uds", "", 219)
	sock := filepath.Join(t.TempDir(), "egress.sock")
	weft.Apply(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-uds}
spec:
  workloadSelector: {labels: {app: conf-uds}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress:
  - port: {number: 0, protocol: HTTP, name: uds}
    bind: unix://%s
    hosts: ["./conf-merge.default.svc.cluster.local"]
`, sock))
	uds := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	meshtest.Eventually(t, "HTTP over the unix socket egress listener", 20*time.Second, func() error {
		if r := kit.Get(t, uds, "http://conf-merge:5000/", nil); r.Status != 200 || !strings.HasPrefix(strings.TrimSpace(r.Body), "conf-merge-v") {
			return fmt.Errorf("conf-merge (imported): %d %q", r.Status, strings.TrimSpace(r.Body))
		}
		if r := kit.Get(t, uds, "http://conf-merge.default.svc.cluster.local:5000/", map[string]string{"x-version": "v2"}); r.Status != 200 || strings.TrimSpace(r.Body) != "conf-merge-v2" {
			return fmt.Errorf("conf-merge v2 by the VirtualService: %d %q", r.Status, strings.TrimSpace(r.Body))
		}
		if r := kit.Get(t, uds, "http://httpbin:8000/get", nil); r.Status != 502 {
			return fmt.Errorf("httpbin (not imported, REGISTRY_ONLY): %d, want 502", r.Status)
		}
		return nil
	})
	// Removing the listener closes the socket.
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-uds}
spec:
  workloadSelector: {labels: {app: conf-uds}}
  egress:
  - hosts: ["./*"]
`)
	meshtest.Eventually(t, "socket removed with its listener", 20*time.Second, func() error {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s still accepts connections", sock)
		}
		return nil
	})
}

// outboundTrafficPolicy.egressProxy: under ALLOW_ANY, requests to hosts the
// proxy does not know go to the egress proxy service (with their Host) instead
// of straight to the destination; known services are routed as usual.
func TestSidecarEgressProxy(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	startBackend(t, m, "conf-merge-v1", "conf-merge", "v1", "", 210)
	startBackend(t, m, "conf-merge-v2", "conf-merge", "v2", "", 211)
	weft.Apply(t, mergeConfig)
	weft.Apply(t, `
apiVersion: v1
kind: Service
metadata: {name: conf-egressproxy}
spec:
  selector: {app: conf-egressproxy}
  ports: [{name: http, port: 5000}]
`)
	startBackend(t, m, "conf-egressproxy", "conf-egressproxy", "v1", "", 220)
	c := client(t, m, "conf-via-egress", "", 221)
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "outside") }))
	defer outside.Close()
	sidecar := func(policy string) string {
		return `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-via-egress}
spec:
  workloadSelector: {labels: {app: conf-via-egress}}
  egress:
  - hosts: ["./*"]
  outboundTrafficPolicy:
` + policy
	}
	weft.Apply(t, sidecar("    mode: ALLOW_ANY\n    egressProxy: {host: conf-egressproxy.default.svc.cluster.local, port: {number: 5000}}\n"))
	meshtest.Eventually(t, "unknown host through the egress proxy", 20*time.Second, func() error {
		if r := kit.Get(t, c, outside.URL, nil); r.Status != 200 || strings.TrimSpace(r.Body) != "conf-egressproxy" {
			return fmt.Errorf("unknown host: %d %q, want the egress proxy's answer", r.Status, strings.TrimSpace(r.Body))
		}
		if r := kit.Get(t, c, "http://conf-merge:5000/", nil); r.Status != 200 || !strings.HasPrefix(strings.TrimSpace(r.Body), "conf-merge-v") {
			return fmt.Errorf("conf-merge (known): %d %q", r.Status, strings.TrimSpace(r.Body))
		}
		return nil
	})
	weft.Apply(t, sidecar("    mode: ALLOW_ANY\n"))
	meshtest.Eventually(t, "without egressProxy: passthrough", 20*time.Second, func() error {
		if r := kit.Get(t, c, outside.URL, nil); r.Status != 200 || strings.TrimSpace(r.Body) != "outside" {
			return fmt.Errorf("unknown host: %d %q, want passthrough", r.Status, strings.TrimSpace(r.Body))
		}
		return nil
	})
}

// A Sidecar ingress listener with tls (ENABLE_TLS_ON_SIDECAR_INGRESS on,
// as this suite's control plane runs) terminates TLS on a port that
// PeerAuthentication leaves plaintext, with the certificate files on the
// workload's host, and serves the app behind it: SIMPLE on 5443 (HTTPS,
// routed to the app's 5000), MUTUAL on 5444 (a client certificate from the
// CA is required). Plaintext to the port is not served.
func TestSidecarIngressTLS(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	startBackend(t, m, "conf-tls-app", "conf-tls", "v1", "", 222)
	ip := m.Workload("conf-tls-app").IP
	dir := t.TempDir()
	ca := newTestCA(t, "conf-tls.example")
	cert, key, _ := ca.leaf(t, dir, "conf-tls.example", false)
	clientCert, clientKey, _ := ca.leaf(t, dir, "conf-tls-client", true)
	caFile := writeFile(t, filepath.Join(dir, "ca.pem"), ca.pem)
	weft.Apply(t, fmt.Sprintf(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: conf-tls}
spec:
  selector: {matchLabels: {app: conf-tls}}
  mtls: {mode: DISABLE}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-tls}
spec:
  workloadSelector: {labels: {app: conf-tls}}
  ingress:
  - port: {number: 5443, protocol: HTTPS, name: https}
    defaultEndpoint: 0.0.0.0:5000
    tls: {mode: SIMPLE, serverCertificate: %[1]s, privateKey: %[2]s}
  - port: {number: 5444, protocol: HTTPS, name: https-mutual}
    defaultEndpoint: 0.0.0.0:5000
    tls: {mode: MUTUAL, serverCertificate: %[1]s, privateKey: %[2]s, caCertificates: %[3]s}
`, cert, key, caFile))
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	httpsClient := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: ca.pool(), ServerName: "conf-tls.example", Certificates: certs}}}
	}
	meshtest.Eventually(t, "TLS terminated by the sidecar's ingress listener", 30*time.Second, func() error {
		if r := kit.Get(t, httpsClient(), "https://"+ip+":5443/", nil); r.Status != 200 || strings.TrimSpace(r.Body) != "conf-tls-app" {
			return fmt.Errorf("SIMPLE: %d %q", r.Status, strings.TrimSpace(r.Body))
		}
		if r := kit.Get(t, httpsClient(pair), "https://"+ip+":5444/", nil); r.Status != 200 || strings.TrimSpace(r.Body) != "conf-tls-app" {
			return fmt.Errorf("MUTUAL with a client certificate: %d %q", r.Status, strings.TrimSpace(r.Body))
		}
		return nil
	})
	if r := kit.Get(t, httpsClient(), "https://"+ip+":5444/", nil); r.Status == 200 {
		t.Errorf("MUTUAL without a client certificate served: %d", r.Status)
	}
	if r := kit.Get(t, kit.Direct, "http://"+ip+":5443/", nil); r.Status == 200 {
		t.Errorf("plaintext to the TLS port served: %d %q", r.Status, r.Body)
	}
}

// A Sidecar ingress listener with a bind (captureMode NONE; explicit-mode
// proxies bind every ingress port anyway) listens on that address, here
// one of this test's own block, and forwards to the app.
func TestSidecarIngressBind(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	startBackend(t, m, "conf-bind-app", "conf-bind", "v1", "", 223)
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-bind}
spec:
  workloadSelector: {labels: {app: conf-bind}}
  ingress:
  - port: {number: 5001, protocol: HTTP, name: http-bound}
    defaultEndpoint: 0.0.0.0:5000
    captureMode: NONE
    bind: 127.0.61.1
`)
	meshtest.Eventually(t, "ingress listener on its bind address", 30*time.Second, func() error {
		if r := kit.Get(t, kit.Direct, "http://127.0.61.1:5001/", nil); r.Status != 200 || strings.TrimSpace(r.Body) != "conf-bind-app" {
			return fmt.Errorf("%d %q", r.Status, strings.TrimSpace(r.Body))
		}
		return nil
	})
}

// A Sidecar ingress listener's connectionPool limits the inbound cluster
// to the app, as Istio applies it: with one connection and one pending
// request allowed, further concurrent requests are refused at once (503,
// overflow) while the app holds the first.
func TestSidecarIngressConnectionPool(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	release := make(chan struct{})
	var releaseMu sync.Mutex
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		releaseMu.Lock()
		ch := release
		releaseMu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
		fmt.Fprintln(w, "conf-pool-app")
	})
	if m.Workload("conf-pool-app") == nil {
		w := &demo.Workload{Name: "conf-pool-app", ServiceAccount: "conf-pool", Labels: map[string]string{"app": "conf-pool"},
			Ports: []node.Port{{Name: "http", Port: 5000, Protocol: "HTTP"}}, IP: "127.0.30.224", AppIP: "127.0.31.224"}
		ln, err := net.Listen("tcp", w.AppIP+":5000")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: slow}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.AddWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-pool}
spec:
  workloadSelector: {labels: {app: conf-pool}}
  ingress:
  - port: {number: 5000, protocol: HTTP, name: http}
    defaultEndpoint: 0.0.0.0:5000
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
`)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	meshtest.Eventually(t, "requests beyond the pool refused with 503", 30*time.Second, func() error {
		releaseMu.Lock()
		release = make(chan struct{})
		ch := release
		releaseMu.Unlock()
		statuses := make(chan int, 4)
		for range 4 {
			go func() {
				resp, err := client.Get("http://127.0.30.224:5000/slow")
				if err != nil {
					statuses <- -1
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		early := map[int]int{}
		timeout := time.After(3 * time.Second)
	collect:
		for range 4 {
			select {
			case s := <-statuses:
				early[s]++
			case <-timeout:
				break collect
			}
		}
		close(ch)
		n := 0
		for _, c := range early {
			n += c
		}
		for ; n < 4; n++ {
			<-statuses
		}
		if early[503] < 1 {
			return fmt.Errorf("answered while the app held the first request: %v (want 503s)", early)
		}
		return nil
	})
}
