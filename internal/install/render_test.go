package install

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The CRDs must be istio.io/api's, unchanged, so Istio's tooling works.
func TestCRDsAreIstioAPIs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(CRDs, want) {
		t.Fatal("internal/install/crds differs from istio.io/api's customresourcedefinitions.gen.yaml: copy it again after a version bump")
	}
}

func render(t *testing.T, sets ...string) string {
	t.Helper()
	v := DefaultValues()
	for _, s := range sets {
		if err := v.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	y, err := Render(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(y)
}

func TestRenderValues(t *testing.T) {
	def := render(t)
	objs, err := Decode([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	if kinds["CustomResourceDefinition"] != 15 || kinds["Deployment"] != 2 || kinds["Service"] != 2 || kinds["PodDisruptionBudget"] != 1 || kinds["ClusterRole"] != 1 {
		t.Errorf("kinds: %v", kinds)
	}
	for _, want := range []string{"replicas: 2", "port: 15012", "port: 15014", "targetPort: 15017", "image: ghcr.io/weftmesh/weft:" + DefaultTag(), "trustDomain: cluster.local", "--secure-address=0.0.0.0:15012", "audience: istio-ca", "name: istio-ca-root-cert", "WEFT_TOKEN_FILE"} {
		if !strings.Contains(def, want) {
			t.Errorf("default manifest lacks %q", want)
		}
	}
	if strings.Contains(def, "port: 15010") || strings.Contains(def, "--xds-address") {
		t.Error("15010 is exposed without pilot.plaintextXDS")
	}
	y := render(t, "revision=canary", "hub=example.com/mesh", "tag=1.2", "trustDomain=example.org",
		"meshConfig.accessLogFile=/dev/stdout", "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY",
		"gateway.enabled=false", "pilot.plaintextXDS=true")
	for _, want := range []string{"name: istiod-canary", "istio.io/rev: canary", "image: example.com/mesh/weft:1.2", "trustDomain: example.org",
		"accessLogFile: /dev/stdout", "mode: REGISTRY_ONLY", "port: 15010", "--xds-address=0.0.0.0:15010"} {
		if !strings.Contains(y, want) {
			t.Errorf("manifest with --set lacks %q", want)
		}
	}
	if strings.Contains(y, "istio-ingressgateway") {
		t.Error("gateway rendered though disabled")
	}
}

func TestSetRejectsBadValues(t *testing.T) {
	for _, s := range []string{"nokey", "revision=Bad_Name", "gateway.enabled=maybe", "unknown=1", "pilot.replicaCount=0", "meshConfig.a..b=1"} {
		v := DefaultValues()
		if err := v.Set(s); err == nil {
			t.Errorf("--set %s accepted", s)
		}
	}
	v := DefaultValues()
	if err := v.Set("meshConfig.noSuchField=1"); err != nil {
		t.Fatal(err)
	}
	if _, err := Render(v); err == nil || !strings.Contains(err.Error(), "noSuchField") {
		t.Errorf("unknown meshConfig field: %v", err)
	}
}
