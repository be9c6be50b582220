package images

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/install"
)

// examples/kube holds Istio's own sample manifests with only the image
// names changed: each file says so at its top, every document parses
// strictly (Kubernetes kinds into their typed structs, Istio kinds through
// Weft's loader and validation), and every image named is one Build makes.
func TestKubeExamples(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "examples", "kube")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bookinfo-gateway.yaml", "bookinfo.yaml", "curl.yaml", "destination-rule-all.yaml", "httpbin.yaml"}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if !slices.Equal(names, want) {
		t.Fatalf("examples/kube has %v, want %v", names, want)
	}
	refs := Refs()
	named := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), "# Weft: Istio's samples/") {
			t.Errorf("%s: no comment at the top saying what was changed from Istio's", f)
		}
		objs, err := install.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		istio := false
		var deployments []*appsv1.Deployment
		for _, u := range objs {
			var into any
			switch u.GetKind() {
			case "Deployment":
				d := &appsv1.Deployment{}
				into = d
				deployments = append(deployments, d)
			case "Service":
				into = &corev1.Service{}
			case "ServiceAccount":
				into = &corev1.ServiceAccount{}
			default:
				if !strings.HasSuffix(u.GetAPIVersion(), ".istio.io/v1") {
					t.Errorf("%s: unexpected %s %s", f, u.GetAPIVersion(), u.GetKind())
				}
				istio = true
				continue
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
				t.Errorf("%s: %s %s: %v", f, u.GetKind(), u.GetName(), err)
			}
		}
		for _, d := range deployments {
			for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
				named[c.Image] = true
				if !slices.Contains(refs, c.Image) {
					t.Errorf("%s: deployment %s names image %s, which Build does not make", f, d.Name, c.Image)
				}
				if c.ImagePullPolicy != corev1.PullIfNotPresent {
					t.Errorf("%s: %s pull policy %q: the node has no registry", f, c.Image, c.ImagePullPolicy)
				}
			}
		}
		if istio {
			res, err := config.LoadFile(f, config.Options{})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, r := range res {
				if errs := config.Validate(r); len(errs) > 0 {
					t.Errorf("%s: %v", f, errs)
				}
			}
		}
	}
	// The three manifests together use every sample image.
	for _, r := range refs {
		if strings.Contains(r, "/examples-bookinfo-") || strings.Contains(r, "/httpbin:") || strings.Contains(r, "/curl:") {
			if !named[r] {
				t.Errorf("no manifest uses %s", r)
			}
		}
	}
}
