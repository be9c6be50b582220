package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kube-inject takes the injector ConfigMap's keys from files, as
// istioctl's --injectConfigFile and --valuesFile: the values' image
// replaces --set's and neverInjectSelector leaves its pods alone.
func TestKubeInjectConfigFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pods := write("pods.yaml", `apiVersion: v1
kind: Pod
metadata: {name: ratings, labels: {app: ratings}}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews, labels: {app: reviews}}
spec: {containers: [{name: app, image: app}]}
`)
	cfg := write("config.yaml", "policy: enabled\nneverInjectSelector:\n- matchLabels: {app: ratings}\n")
	vals := write("values.json", `{"global":{"hub":"registry.example","tag":"7"}}`)
	for _, tc := range []struct {
		args    []string
		ratings bool
		image   string
	}{
		{nil, true, "weft.local/weft-proxy:"},
		{[]string{"--injectConfigFile", cfg}, false, "weft.local/weft-proxy:"},
		{[]string{"--injectConfigFile", cfg, "--valuesFile", vals, "--set", "hub=other"}, false, "registry.example/weft-proxy:7"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"kube-inject", "-f", pods, "--set", "hub=weft.local"}, tc.args...)
		if code := Main(args, nil, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		docs := strings.Split(out.String(), "\n---\n")
		if len(docs) != 2 {
			t.Fatalf("%v: %d documents", args, len(docs))
		}
		if got := strings.Contains(docs[0], "istio-proxy"); got != tc.ratings {
			t.Errorf("%v: ratings injected %v, want %v", tc.args, got, tc.ratings)
		}
		if !strings.Contains(docs[1], "image: "+tc.image) {
			t.Errorf("%v: reviews lacks image %s:\n%s", tc.args, tc.image, docs[1])
		}
	}
}
