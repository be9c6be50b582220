package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/test/e2e/kit"
)

const describeConfig = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  portLevelMtls:
    9000: {mode: DISABLE}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: foo}
spec:
  host: httpbin
  trafficPolicy: {tls: {mode: DISABLE}}
`

// TestDescribeWorkload: weft x describe workload explains which
// PeerAuthentication applies to a connected proxy's workload, per port,
// what clients send, and warns about the DestinationRule that breaks it.
func TestDescribeWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	dir := t.TempDir()
	kit.WriteConfig(t, dir, "httpbin.yaml", describeConfig)
	cp := cpStart(t, dir)
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.43.1", Name: "httpbin", Namespace: "foo", ServiceAccount: "httpbin",
		Labels: map[string]string{"app": "httpbin"}, MeshTLS: true, AppAddress: "127.0.44.1",
		Ports: []node.Port{{Name: "http", Port: 8000, Protocol: "HTTP"}, {Name: "tcp", Port: 9000, Protocol: "TCP"}}}
	c, err := meshtest.DialXDS(cp.XDS, m, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, func(c *meshtest.XDSClient) bool { return len(c.Resources(resource.ListenerType)) > 0 }); err != nil {
		t.Fatal(err)
	}
	wants := []string{
		"Identity:  spiffe://cluster.local/ns/foo/sa/httpbin",
		"PeerAuthentication: STRICT (from namespace)",
		"namespace foo/default  mtls.mode=STRICT",
		"workload  foo/httpbin  mtls.mode=UNSET",
		"8000  HTTP      STRICT   mutual TLS only",
		"9000  TCP       DISABLE  plaintext only",
		"httpbin.foo.svc.cluster.local  8000  DISABLE",
		"WARNING: httpbin.foo.svc.cluster.local:8000: clients send DISABLE but the workload is STRICT",
	}
	// The workload's registration reaches the snapshot after its first
	// push: poll until its service shows.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errs := cp.Weft.Run(t, "", "x", "describe", "workload", "httpbin.foo")
		var missing []string
		for _, w := range wants {
			if !strings.Contains(out, w) {
				missing = append(missing, w)
			}
		}
		if code == 0 && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("describe (exit %d) lacks %q:\n%s%s", code, missing, out, errs)
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	if code, _, errs := cp.Weft.Run(t, "", "x", "describe", "workload", "nobody"); code == 0 || !strings.Contains(errs, "not connected") {
		t.Errorf("unknown workload: exit %d %q", code, errs)
	}
}
