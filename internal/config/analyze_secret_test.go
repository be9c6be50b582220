package config

import (
	"strings"
	"testing"
)

// TestAnalyzeSecretsComplete: a source that holds every referenced Secret
// (the Kubernetes source watches exactly those) reports a credentialName
// with no Secret even when it holds no Secret at all; a plain set without
// Secrets does not, since they may live elsewhere.
func TestAnalyzeSecretsComplete(t *testing.T) {
	const src = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cred}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [ext.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext}
spec:
  host: ext.example.com
  subsets:
  - name: v1
    trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-cred}}
`
	res, err := LoadReader("a.yaml", strings.NewReader(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := func(opts AnalyzeOptions) string {
		var lines []string
		for _, m := range Analyze(res, opts) {
			lines = append(lines, m.String())
		}
		return strings.Join(lines, "\n")
	}
	if got := text(AnalyzeOptions{}); strings.Contains(got, "credentialName") {
		t.Errorf("without Secrets in the set, credentialName is not judged:\n%s", got)
	}
	got := text(AnalyzeOptions{SecretsComplete: true})
	for _, want := range []string{
		`Error [IST0101] (Gateway default/gw a.yaml:8) Referenced credentialName not found: "cred"`,
		`Error [IST0101] (DestinationRule default/ext a.yaml:`, `Referenced credentialName not found: "client-cred"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("SecretsComplete: want %q in\n%s", want, got)
		}
	}
}
