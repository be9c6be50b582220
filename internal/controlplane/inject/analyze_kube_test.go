package inject_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
)

// weft analyze -k on a real API server finds outdated sidecars: IST0158
// for pods whose istio-proxy image is not the one the injector ConfigMap
// names (following edits of the ConfigMap), WFT0040 for pods injected by
// another revision than the namespace selects; IST0103 decides with the
// ConfigMap's neverInjectSelector.
func TestAnalyzeOutdatedSidecars(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	a, err := install.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds, _ := install.Decode(install.CRDs)
	if _, err := a.Apply(ctx, crds, false); err != nil {
		t.Fatal(err)
	}
	sysNS := env.Namespace(t, nil)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: inject.ConfigMapName("")}, Data: map[string]string{
		"config": "policy: enabled\n",
		"values": `{"global":{"hub":"weft.local","tag":"2","proxy":{"image":"weft-proxy"}}}`,
	}}
	cms := env.Client.CoreV1().ConfigMaps(sysNS)
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	create := func(name, image, revision string, labels map[string]string) {
		t.Helper()
		p := appPod(name, labels, nil)
		p.Namespace = ns
		if image != "" {
			cfg := injectorConfig()
			cfg.ProxyImage, cfg.Revision = image, revision
			if p, err = inject.Inject(cfg, p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("old", "weft.local/weft-proxy:1", "", nil)
	create("current", "weft.local/weft-proxy:2", "", nil)
	create("otherrev", "weft.local/weft-proxy:2", "canary", nil)
	analyze := func() string {
		var out bytes.Buffer
		cli.Main([]string{"analyze", "-k", "--kubeconfig", env.Kubeconfig, "--system-namespace", sysNS, "-n", ns}, strings.NewReader(""), &out, &out)
		return out.String()
	}
	s := analyze()
	for _, want := range []string{
		"Warning [IST0158] (Namespace " + ns + ") The Istio proxy images of the pods running in the namespace do not match the image defined in the injection configuration (pod names: [old])",
		"Warning [WFT0040] (Namespace " + ns + ") The Istio proxies of the pods running in the namespace were injected by a revision other than \"default\", which the namespace selects (pod names: [otherrev])",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("analyze lacks\n%s\nin\n%s", want, s)
		}
	}
	if strings.Contains(s, "IST0103") {
		t.Errorf("injected pods reported as missing the proxy:\n%s", s)
	}

	// An upgrade of the injector (tag 3) makes every sidecar outdated.
	cm.Data["values"] = `{"global":{"hub":"weft.local","tag":"3"}}`
	cm.Data["config"] = "policy: enabled\nneverInjectSelector:\n- matchLabels: {app: legacy}\n"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	create("plain-legacy", "", "", map[string]string{"app": "legacy"})
	create("plain-ratings", "", "", map[string]string{"app": "ratings"})
	s = analyze()
	if !strings.Contains(s, "(pod names: [current old otherrev])") {
		t.Errorf("after the injector's upgrade:\n%s", s)
	}
	if !strings.Contains(s, "Pod "+ns+"/plain-ratings") || strings.Contains(s, "plain-legacy") {
		t.Errorf("IST0103 with the ConfigMap's neverInjectSelector:\n%s", s)
	}

	// A ConfigMap that does not parse is reported, not guessed at.
	cm.Data["config"] = "policy: sometimes\n"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s = analyze(); !strings.Contains(s, "Error [IST0106] (ConfigMap "+sysNS+"/istio-sidecar-injector)") {
		t.Errorf("bad injector ConfigMap:\n%s", s)
	}
}
