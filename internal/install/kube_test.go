package install_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func weft(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &out)
	return code, out.String()
}

// TestInstallOnAPIServer: the rendered installation passes a server-side
// dry run, installs, re-installs without changing anything, is checked,
// and uninstalls.
func TestInstallOnAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	kc := "--kubeconfig=" + env.Kubeconfig
	// A dry run stores nothing, so the namespace the other objects go to
	// must exist for them to be admitted (as with kubectl --dry-run=server).
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out := weft(t, "install", "--dry-run", kc, "--set", "meshConfig.accessLogFile=/dev/stdout")
	if code != 0 {
		t.Fatalf("install --dry-run = %d:\n%s", code, out)
	}
	if n := strings.Count(out, "(server dry run)"); n < 25 {
		t.Errorf("dry run covered %d objects:\n%s", n, out)
	}
	if _, err := env.Client.AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the dry run stored the Deployment: %v", err)
	}

	if code, out = weft(t, "install", kc, "--set", "meshConfig.accessLogFile=/dev/stdout"); code != 0 {
		t.Fatalf("install = %d:\n%s", code, out)
	}
	code, out = weft(t, "install", kc, "--set", "meshConfig.accessLogFile=/dev/stdout")
	if code != 0 {
		t.Fatalf("second install = %d:\n%s", code, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(l, " unchanged") {
			t.Errorf("re-install changed something: %s", l)
		}
	}
	cm, err := env.Client.CoreV1().ConfigMaps("istio-system").Get(ctx, "istio", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["mesh"], "accessLogFile: /dev/stdout") {
		t.Fatalf("mesh config: %v %v", cm.Data, err)
	}

	// No controllers run here, so the Deployments never become available:
	// check must say so, and find everything else.
	code, out = weft(t, "check", kc)
	if code != 1 || !strings.Contains(out, "FAIL Deployment istio-system/istiod: 0/2 available") ||
		!strings.Contains(out, "ok   CustomResourceDefinition virtualservices.networking.istio.io") ||
		!strings.Contains(out, "ok   Service istio-system/istiod") || strings.Contains(out, "missing") {
		t.Errorf("check = %d:\n%s", code, out)
	}

	if code, out = weft(t, "uninstall", kc); code != 0 || !strings.Contains(out, "Deployment istio-system/istiod deleted") {
		t.Fatalf("uninstall = %d:\n%s", code, out)
	}
	code, out = weft(t, "check", kc)
	if code != 1 || !strings.Contains(out, "FAIL Deployment istio-system/istiod: missing") || !strings.Contains(out, "ok   CustomResourceDefinition") {
		t.Errorf("check after uninstall (CRDs kept) = %d:\n%s", code, out)
	}
}
