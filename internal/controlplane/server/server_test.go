package server_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

const bookinfo = `apiVersion: v1
kind: Service
metadata:
  name: ratings
spec:
  selector:
    app: ratings
  ports:
  - name: http
    port: 9080
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector:
    app: reviews
  ports:
  - name: http
    port: 9080
`

func start(t *testing.T, files map[string]string, grace time.Duration) *server.Server {
	t.Helper()
	s, _ := startWith(t, files, server.Options{Grace: grace})
	return s
}

// weft runs the real CLI in-process against the server.
func weft(s *server.Server, stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(append(args, "--control-plane", s.MonitoringAddr()), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	t.Fatalf("%s: never happened; last:\n%s", what, last)
}

func TestProxyStatusShowsNACK(t *testing.T) {
	s := start(t, map[string]string{"bookinfo.yaml": bookinfo}, 50*time.Millisecond)
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.7", Name: "productpage-v1", Namespace: "default",
		Labels: map[string]string{"app": "productpage"}, Version: "test-1"}
	const reason = "cluster outbound|9080||reviews.default.svc.cluster.local: unsupported field lb_subset_config"
	c, err := meshtest.DialXDS(s.XDSAddr(), m, meshtest.XDSClientOptions{Reject: func(typeURL string, _ map[string]proto.Message) string {
		if typeURL == resource.ClusterType {
			return reason
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "proxy-status shows the NACK", func() (bool, string) {
		code, out, errs := weft(s, "", "proxy-status")
		return code == 0 && strings.Contains(out, m.ID()) && strings.Contains(out, "NACK") && strings.Contains(out, reason) &&
			strings.Contains(out, "SYNCED") && strings.Contains(out, "test-1"), out + errs
	})
	// The table names the type that was rejected.
	_, out, _ := weft(s, "", "proxy-status", "productpage-v1")
	if !strings.Contains(out, "NACK "+m.ID()+" CDS") || !strings.Contains(out, "TYPE   STATE") || !strings.Contains(out, "state-of-the-world") {
		t.Errorf("single-proxy status lacks the NACK line or the version table:\n%s", out)
	}
	var metrics bytes.Buffer
	code := cli.Main([]string{"get", "status", "--control-plane", s.MonitoringAddr()}, nil, &metrics, &metrics)
	if code != 0 || !strings.Contains(metrics.String(), "1 proxies connected") {
		t.Errorf("get status = %d:\n%s", code, metrics.String())
	}
}

func TestApplyAndAutoRegistration(t *testing.T) {
	s := start(t, map[string]string{"bookinfo.yaml": bookinfo}, 50*time.Millisecond)
	// An invalid apply names file:line and exits 1; nothing changes.
	code, _, errs := weft(s, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  htp: []\n", "apply", "-f", "-")
	if code != 1 || !strings.Contains(errs, "<stdin>:7") {
		t.Fatalf("invalid apply: code %d, stderr %q", code, errs)
	}
	code, out, errs := weft(s, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n", "apply", "-f", "-")
	if code != 0 || !strings.Contains(out, "VirtualService default/reviews created") {
		t.Fatalf("apply: %d %q %q", code, out, errs)
	}
	code, out, _ = weft(s, "", "get", "vs", "reviews", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "host: reviews") {
		t.Fatalf("get: %d %q", code, out)
	}

	// A proxy that connects becomes an endpoint of the services selecting
	// it; after it leaves and the grace period passes, it is gone.
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.9", Name: "ratings-v1", Namespace: "default",
		Labels: map[string]string{"app": "ratings"}, Ports: []node.Port{{Name: "http", Port: 9080, Protocol: "HTTP"}}}
	c, err := meshtest.DialXDS(s.XDSAddr(), m, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	endpoints := func() int {
		for _, svc := range s.XDS().Snapshot().Services {
			if svc.Hostname == "ratings.default.svc.cluster.local" {
				return len(svc.Endpoints)
			}
		}
		return -1
	}
	eventually(t, "auto-registered endpoint", func() (bool, string) { return endpoints() == 1, "" })
	c.Close()
	eventually(t, "endpoint removed after grace", func() (bool, string) { return endpoints() == 0, "" })

	code, out, _ = weft(s, "", "delete", "vs", "reviews")
	if code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %q", code, out)
	}
	if code, _, errs := weft(s, "", "get", "vs", "reviews"); code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("get after delete: %d %q", code, errs)
	}
}

func TestProxyConfig(t *testing.T) {
	s := start(t, map[string]string{"bookinfo.yaml": bookinfo}, 50*time.Millisecond)
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.8", Name: "productpage-v1", Namespace: "default", Capture: true,
		Labels: map[string]string{"app": "productpage"}}
	c, err := meshtest.DialXDS(s.XDSAddr(), m, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "clusters served", func() (bool, string) {
		code, out, errs := weft(s, "", "proxy-config", "clusters", "productpage-v1.default")
		return code == 0 && strings.Contains(out, "reviews.default.svc.cluster.local") && strings.Contains(out, "outbound"), out + errs
	})
	code, out, errs := weft(s, "", "proxy-config", "all", m.ID(), "-o", "json")
	if code != 0 || !strings.Contains(out, "envoy.admin.v3.ClustersConfigDump") || !strings.Contains(out, "dynamicActiveClusters") {
		t.Fatalf("json dump: %d %q %q", code, out[:min(len(out), 400)], errs)
	}
	if code, _, errs := weft(s, "", "proxy-config", "listeners", "nope"); code != 1 || !strings.Contains(errs, "not connected") {
		t.Fatalf("unknown proxy: %d %q", code, errs)
	}
}
