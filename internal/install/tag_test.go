package install

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/version"
)

// The default tag is the binary's own version (istioctl's rule), never
// "latest": with "latest" the kubelet pulls on every start.
func TestDefaultTagIsVersion(t *testing.T) {
	old := version.Version
	defer func() { version.Version = old }()
	for _, tc := range []struct{ version, tag string }{
		{"dev", "dev"},
		{"1.4.0", "1.4.0"},
		{"5144796-dirty", "5144796-dirty"},
		{"v1.2+weird/", "dev"}, // not a valid tag: the images are tagged dev then
	} {
		version.Version = tc.version
		if got := DefaultValues().Tag; got != tc.tag {
			t.Errorf("version %q: default tag %q, want %q", tc.version, got, tc.tag)
		}
		y := render(t)
		if strings.Contains(y, ":latest") {
			t.Errorf("version %q: the manifest names a :latest image", tc.version)
		}
	}
	v := DefaultValues()
	if err := v.Set("tag=bad tag"); err == nil {
		t.Error("--set tag='bad tag' accepted")
	}
}

// hub and tag reach every image of the install and the injector: the
// control plane's --proxy-hub/--proxy-tag, the gateway's proxy image, and
// the sidecar image the injector puts into pods.
func TestHubTagFlow(t *testing.T) {
	y := render(t, "hub=weft.local", "tag=dev")
	objs, err := Decode([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	var cpArgs []string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == inject.ConfigMapName("") {
			// The injector ConfigMap names the same image (Istio's analyzer
			// and Weft's read it there).
			cm := &corev1.ConfigMap{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, cm); err != nil {
				t.Fatal(err)
			}
			c, err := inject.FromConfigMap(&inject.Config{}, cm.Data)
			if err != nil || c.ProxyImage != "weft.local/weft-proxy:dev" || c.Policy != inject.PolicyEnabled || cm.Namespace != "istio-system" {
				t.Errorf("injector configmap %s/%s: %+v %v", cm.Namespace, cm.Name, c, err)
			}
			images["configmap"] = c.ProxyImage
		}
		if o.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, d); err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			images[d.Name] = c.Image
			if d.Name == ControlPlane {
				cpArgs = c.Args
			}
		}
	}
	if images["configmap"] == "" {
		t.Error("no istio-sidecar-injector ConfigMap rendered")
	}
	if images[ControlPlane] != "weft.local/weft:dev" || images["istio-ingressgateway"] != "weft.local/weft-proxy:dev" {
		t.Errorf("images %v", images)
	}
	args := strings.Join(cpArgs, " ")
	for _, want := range []string{"--proxy-hub=weft.local", "--proxy-tag=dev"} {
		if !strings.Contains(args, want) {
			t.Errorf("control plane args %q lack %s", args, want)
		}
	}
	v := DefaultValues()
	v.Hub, v.Tag = "weft.local", "dev"
	if got := v.InjectConfig().ProxyImage; got != "weft.local/weft-proxy:dev" {
		t.Errorf("injected sidecar image %q", got)
	}
}
