package tasks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
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
