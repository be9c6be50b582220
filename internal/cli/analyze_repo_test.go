package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A real repository mixes Istio config with everything else. istioctl
// analyze skips kinds it has no schema for and notes files it cannot
// parse on stderr (exit 65 unless --ignore-unknown); Weft does the same,
// warns once per Istio kind it does not implement, and bounds a message
// repeated thousands of times.
func TestAnalyzeRealRepository(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("k8s/app.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: grafana-dashboards}
data: {dash.json: "{}"}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec: {secretName: web}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
`)
	write("istio/filters.yaml", `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: a}
spec: {}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: b}
spec: {}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: w}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec: {}
`)
	write("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
	write("chart/values.yaml", "replicaCount: 2\nimage: {repository: nginx}\n")
	write("assets/logo.yaml", "\x89PNG\x00\x00binary")
	var vs strings.Builder
	vs.WriteString("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web]\n  http:\n")
	for range 3000 {
		vs.WriteString("  - match: [{uri: {prefix: /}}]\n    route: [{destination: {host: web}, weight: -1}]\n")
	}
	write("istio/vs.yaml", vs.String())

	code, out, errOut := runAnalyze(t, "", dir)
	if code != analyzeFailedCode {
		t.Errorf("exit %d, want %d (the VirtualService has errors)", code, analyzeFailedCode)
	}
	for _, skipped := range []string{"Deployment", "grafana", "Certificate", "Chart.yaml"} {
		if strings.Contains(out+errOut, skipped) {
			t.Errorf("%s should be skipped silently:\n%s%s", skipped, out, errOut)
		}
	}
	for _, want := range []string{
		"Warning [WFT0020] (" + filepath.Join(dir, "istio/filters.yaml") + ":2) EnvoyFilter (networking.istio.io/v1alpha3) is an Istio kind that Weft does not implement yet (2 documents skipped).",
		"Warning [WFT0020] (" + filepath.Join(dir, "istio/filters.yaml") + ":12) WasmPlugin",
		"Warning [WFT0020] (" + filepath.Join(dir, "istio/filters.yaml") + ":17) HTTPRoute (gateway.networking.k8s.io/v1) is a Gateway API kind",
		"2990 more Error [IST0106] messages like the above in this resource not shown.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%.3000s", want, out)
		}
	}
	if strings.Contains(out, "values.yaml") || strings.Contains(out, "logo.yaml") || strings.Contains(out, "Schema validation error: invalid YAML") {
		t.Errorf("unparseable files must not be schema validation messages:\n%.3000s", out)
	}
	for _, want := range []string{"Skipping " + filepath.Join(dir, "chart/values.yaml") + ":1:1: not a Kubernetes object", "Skipping " + filepath.Join(dir, "assets/logo.yaml") + ": binary file"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(out, "\n"); n > 60 {
		t.Errorf("%d lines of output for one repeated mistake; want it bounded", n)
	}

	// Without the VirtualService, only the unparseable files remain: exit
	// 65 as istioctl, 0 with --ignore-unknown; the Warnings do not fail.
	os.Remove(filepath.Join(dir, "istio/vs.yaml"))
	write("istio/vs.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web]\n  http: [{route: [{destination: {host: web}}]}]\n")
	if code, out, errOut := runAnalyze(t, "", dir); code != analyzeDataErrorCode {
		t.Errorf("exit %d, want %d\n%s%s", code, analyzeDataErrorCode, out, errOut)
	}
	if code, out, errOut := runAnalyze(t, "", "--ignore-unknown", dir); code != 0 || !strings.Contains(errOut, "Skipping") {
		t.Errorf("--ignore-unknown: exit %d\n%s%s", code, out, errOut)
	}
}
