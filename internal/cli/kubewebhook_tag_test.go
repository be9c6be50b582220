package cli

import (
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/internal/install"
)

// The control plane that `weft install --set hub=… --set tag=…` renders
// injects sidecars of that hub and tag: its own args, parsed by its flags,
// give the injector's image.
func TestInstalledControlPlaneInjectsHubTag(t *testing.T) {
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"hub=weft.local", "tag=dev"}, "weft.local/weft-proxy:dev"},
		{nil, "ghcr.io/weftmesh/weft-proxy:" + install.DefaultTag()},
	} {
		v := install.DefaultValues()
		for _, s := range tc.sets {
			if err := v.Set(s); err != nil {
				t.Fatal(err)
			}
		}
		y, err := install.Render(v)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := install.Decode(y)
		if err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, o := range objs {
			if o.GetKind() == "Deployment" && o.GetName() == install.ControlPlane {
				d := &appsv1.Deployment{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, d); err != nil {
					t.Fatal(err)
				}
				args = d.Spec.Template.Spec.Containers[0].Args
			}
		}
		if len(args) == 0 {
			t.Fatal("no control plane Deployment")
		}
		var w webhookFlags
		fs := pflag.NewFlagSet("control-plane", pflag.ContinueOnError)
		fs.ParseErrorsAllowlist.UnknownFlags = true
		w.register(fs)
		if err := fs.Parse(args[1:]); err != nil {
			t.Fatal(err)
		}
		m := &kubeMode{ns: v.Namespace, webhook: w}
		if got := m.injectValues().InjectConfig().ProxyImage; got != tc.want {
			t.Errorf("--set %v: injected image %q, want %q", tc.sets, got, tc.want)
		}
	}
}
