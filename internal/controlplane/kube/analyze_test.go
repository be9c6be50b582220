package kube_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/kubetest"
)

// TestAnalyzeLiveCluster: weft analyze -k reads the cluster and reports
// cross-resource problems and objects the control plane refuses.
func TestAnalyzeLiveCluster(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "to-nowhere", Namespace: ns}}
	vs.Spec.Hosts = []string{"reviews"}
	vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "no-such-service"}}}}}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "no-route", Namespace: ns}}
	bad.Spec.Hosts = []string{"reviews"}
	bad.Spec.Http = []*networkingapi.HTTPRoute{{}}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := cli.Main([]string{"analyze", "-k", "--kubeconfig", env.Kubeconfig, "-n", ns}, strings.NewReader(""), &out, &out)
	if code != 79 || !strings.Contains(out.String(), "IST0101") || !strings.Contains(out.String(), "no-such-service") ||
		!strings.Contains(out.String(), "VirtualService "+ns+"/no-route") {
		t.Fatalf("analyze -k = %d:\n%s", code, out.String())
	}
	if code := cli.Main([]string{"analyze", "-k", "some.yaml"}, nil, &out, &out); code == 0 {
		t.Error("-k with files accepted")
	}
}
