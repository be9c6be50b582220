package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/meshtest"
)

// TestNodeRunsPods checks the node itself, with no mesh: a pod in a
// namespace without injection runs from an imported image, resolves the
// kubernetes Service through CoreDNS (clusterDNS) and reaches the
// apiserver through its ClusterIP (kube-proxy's iptables rules).
func TestNodeRunsPods(t *testing.T) {
	n := node(t)
	kubectl(t, n, "", "create", "namespace", "harness")
	t.Cleanup(func() { n.Kubectl(context.Background(), nil, "delete", "namespace", "harness", "--wait=false") })
	// The weft image's sample curl: a TLS handshake with the apiserver
	// through the Service name; /readyz answers 200 to anyone.
	kubectl(t, n, `apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: harness}
spec:
  restartPolicy: Never
  containers:
  - name: probe
    image: weft.local/weft:dev
    args: ["sample", "curl", "-sk", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "https://kubernetes.default.svc.cluster.local/readyz"]
`, "apply", "-f", "-")
	var phase string
	meshtest.Eventually(t, "the probe pod completes", 2*time.Minute, func() error {
		phase = strings.TrimSpace(kubectl(t, n, "", "-n", "harness", "get", "pod", "probe", "-o", "jsonpath={.status.phase}"))
		if phase != "Succeeded" && phase != "Failed" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	logs := kubectl(t, n, "", "-n", "harness", "logs", "probe")
	if phase != "Succeeded" || strings.TrimSpace(logs) != "200" {
		t.Fatalf("probe pod %s, output %q: want Succeeded and 200 from the apiserver via %s", phase, logs, kubetest.KubernetesServiceIP)
	}
}
