package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestControlPlaneCLI drives a real `weft control-plane` process with the
// real CLI: apply (valid, invalid), get, delete, and proxy-status showing a
// NACK from an xDS client.
func TestControlPlaneCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	dir := t.TempDir()
	kit.WriteConfig(t, dir, "bookinfo.yaml", grpcReviewsService)
	cp := cpStart(t, dir)

	bad := filepath.Join(t.TempDir(), "reviews-vs.yaml")
	os.WriteFile(bad, []byte(strings.Replace(vs8020, "weight: 20", "weight: 20\n      wieght: 5", 1)), 0o644)
	code, _, errs := cp.Weft.Run(t, "", "apply", "-f", bad)
	if code != 1 || !strings.Contains(errs, bad+":13") || !strings.Contains(errs, "wieght") {
		t.Fatalf("invalid apply: exit %d, stderr %q", code, errs)
	}
	code, out, errs := cp.Weft.Run(t, vs8020, "apply", "-f", "-")
	if code != 0 || !strings.Contains(out, "VirtualService default/reviews created") {
		t.Fatalf("apply: exit %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "virtualservice-default-reviews.yaml")); err != nil {
		t.Fatalf("apply did not write the file: %v", err)
	}
	code, out, _ = cp.Weft.Run(t, "", "get", "virtualservices", "-o", "json")
	if code != 0 || !strings.Contains(out, `"weight": 80`) {
		t.Fatalf("get -o json: exit %d\n%s", code, out)
	}

	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.20", Name: "productpage-v1", Namespace: "default", Capture: true,
		Labels: map[string]string{"app": "productpage"}}
	c, err := meshtest.DialXDS(cp.XDS, m, meshtest.XDSClientOptions{Delta: true, Reject: func(typeURL string, _ map[string]proto.Message) string {
		if typeURL == resource.RouteType {
			return "route 9080: weighted_clusters total_weight is not supported"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errs = cp.Weft.Run(t, "", "proxy-status")
		if code == 0 && strings.Contains(out, "NACK "+m.ID()+" RDS") && strings.Contains(out, "total_weight is not supported") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy-status never showed the NACK (exit %d):\n%s%s", code, out, errs)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	// The proxy got clusters; proxy-config shows them from the server.
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFor(wctx, func(c *meshtest.XDSClient) bool { return len(c.Resources(resource.ClusterType)) > 0 }); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cp.Weft.Run(t, "", "proxy-config", "clusters", "productpage-v1")
	if code != 0 || !strings.Contains(out, "reviews.default.svc.cluster.local") || !strings.Contains(out, "v2") {
		t.Fatalf("proxy-config clusters: exit %d\n%s", code, out)
	}

	code, out, _ = cp.Weft.Run(t, vs8020, "delete", "-f", "-")
	if code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: exit %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "virtualservice-default-reviews.yaml")); !os.IsNotExist(err) {
		t.Fatalf("delete left the file: %v", err)
	}
	code, out, _ = cp.Weft.Run(t, "", "get", "status")
	if code != 0 || !strings.Contains(out, "1 proxies connected") {
		t.Fatalf("get status: exit %d\n%s", code, out)
	}
}
