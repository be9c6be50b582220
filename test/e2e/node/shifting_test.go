package node

import (
	"context"
	"strings"
	"testing"
)

// shiftingDiagnostics logs, when the traffic-shifting test failed, what
// can skew a 50/50 split: productpage retries a failed reviews call once
// (the sample's own retry), and its sidecar picks the weighted branch
// again for the retry, so failures on one version shift pages to the
// other. One run on 2026-12-06 counted 146 v1 / 254 v3 over 400 pages.
func shiftingDiagnostics(t *testing.T, m *nodeMesh) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx := context.Background()
		out, err := m.n.Kubectl(ctx, nil, "logs", "-l", "app=productpage", "-c", "productpage", "--tail=-1", "--prefix", "--since=10m")
		var failed []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "reviews call failed") {
				failed = append(failed, l)
			}
		}
		t.Logf("productpage's failed reviews calls (%d; %v):\n%s", len(failed), err, strings.Join(failed[max(0, len(failed)-40):], "\n"))
		for _, args := range [][]string{
			{"get", "pods", "-l", "app in (reviews,productpage)", "-o", "wide"},
			{"get", "endpointslices", "-l", "kubernetes.io/service-name=reviews", "-o", "jsonpath={range .items[*].endpoints[*]}{.addresses} {.conditions} {.targetRef.name}{'\\n'}{end}"},
			{"get", "virtualservice", "reviews", "-o", "jsonpath={.spec}"},
		} {
			out, err := m.n.Kubectl(ctx, nil, args...)
			t.Logf("kubectl %s (%v):\n%s", strings.Join(args, " "), err, out)
		}
		out, err = m.n.Kubectl(ctx, nil, "logs", "-l", "app=productpage", "-c", "istio-proxy", "--tail=-1", "--prefix", "--since=10m")
		var bad []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "reviews") && !strings.Contains(l, `" 200 - `) && strings.Contains(l, `HTTP/1.1" `) {
				bad = append(bad, l)
			}
		}
		t.Logf("productpage sidecars' access-log lines to reviews that are not a clean 200 (%d; %v):\n%s", len(bad), err, strings.Join(bad[max(0, len(bad)-40):], "\n"))
	})
}
