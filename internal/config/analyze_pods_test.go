package config

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodsAreWorkloads: from a cluster, Pods are the workloads selectors
// pick (as for istioctl analyze): a Gateway whose selector a Pod matches
// has no IST0101, and a policy selecting pods is not IST0127, even when
// WorkloadEntries exist that match neither.
func TestPodsAreWorkloads(t *testing.T) {
	res, err := LoadReader("a.yaml", strings.NewReader(gateway("gw", "80", "[\"*\"]")+
		"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm}\nspec: {address: 10.0.0.1, labels: {app: vm}}\n---\n"+
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: web}}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	codes := func(rs []*Resource) []string {
		var out []string
		for _, m := range Analyze(rs, AnalyzeOptions{}) {
			out = append(out, m.Code+" "+m.Text)
		}
		return out
	}
	before := strings.Join(codes(res), "\n")
	if !strings.Contains(before, `IST0101 Referenced selector not found: "istio=ingressgateway"`) || !strings.Contains(before, "IST0127") {
		t.Fatalf("without pods, want IST0101 and IST0127:\n%s", before)
	}
	pod := func(name string, labels map[string]string) *Resource {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels}}
		return &Resource{Kind: KindPod, APIVersion: "v1", Name: name, Namespace: "default", Object: p, Meta: &p.ObjectMeta}
	}
	with := append(res, pod("ingress", map[string]string{"istio": "ingressgateway"}), pod("web", map[string]string{"app": "web"}))
	after := strings.Join(codes(with), "\n")
	if strings.Contains(after, "IST0101") || strings.Contains(after, "IST0127") {
		t.Errorf("with the pods, want neither IST0101 nor IST0127, got:\n%s", after)
	}
}
