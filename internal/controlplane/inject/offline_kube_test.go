package inject_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/kubetest"
)

// kube-inject follows the injector ConfigMap as the webhook does: read
// from the cluster, or from files holding its keys, the output equals
// what the webhook stores for the same pod (the values' image on the
// sidecar), and a pod the ConfigMap's neverInjectSelector names, or with
// sidecar.istio.io/inject: "false", is left alone by both.
func TestKubeInjectFollowsConfigMap(t *testing.T) {
	env := kubetest.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sysNS := env.Namespace(t, nil)
	data := map[string]string{
		"config": "policy: enabled\nneverInjectSelector:\n- matchLabels: {app: ratings}\n",
		"values": `{"global":{"hub":"registry.example","tag":"1.2.3","proxy":{"image":"weft-proxy"}}}`,
	}
	name := inject.ConfigMapName("")
	if _, err := env.Client.CoreV1().ConfigMaps(sysNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startLiveWebhook(ctx, t, env, sysNS, nil)
	labelled := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	plain := env.Namespace(t, nil)
	waitActive(t, env, labelled)

	fromCluster, from, err := inject.OfflineConfig(ctx, injectorConfig(), inject.Source{Client: env.Client, Namespace: sysNS, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if from != "configmap "+sysNS+"/"+name || fromCluster.ProxyImage != "registry.example/weft-proxy:1.2.3" {
		t.Fatalf("from %q, image %q", from, fromCluster.ProxyImage)
	}
	dir := t.TempDir()
	cfgFile, valFile := filepath.Join(dir, "inject-config.yaml"), filepath.Join(dir, "inject-values.yaml")
	os.WriteFile(cfgFile, []byte(data["config"]), 0o644)
	os.WriteFile(valFile, []byte(data["values"]), 0o644)
	// Files only, no cluster: istioctl's --injectConfigFile/--valuesFile.
	fromFiles, _, err := inject.OfflineConfig(ctx, injectorConfig(), inject.Source{ConfigFile: cfgFile, ValuesFile: valFile})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		c    *inject.Config
		pod  *corev1.Pod
		want bool
	}{
		{fromCluster, appPod("cm-reviews", nil, nil), true},
		{fromFiles, appPod("files-reviews", nil, nil), true},
		{fromCluster, appPod("cm-ratings", map[string]string{"app": "ratings"}, nil), false},
		{fromFiles, appPod("files-ratings", map[string]string{"app": "ratings"}, nil), false},
		{fromCluster, appPod("cm-opt-out", nil, map[string]string{"sidecar.istio.io/inject": "false"}), false},
	} {
		if got := sameAsWebhook(t, env, tc.c, tc.pod, labelled, plain); got != tc.want {
			t.Errorf("%s: sidecar %v, want %v", tc.pod.Name, got, tc.want)
		}
	}
	// The flags' image would differ: the equality above is the ConfigMap's.
	if injectorConfig().ProxyImage == fromCluster.ProxyImage {
		t.Fatal("the test's ConfigMap must change the image")
	}
}
