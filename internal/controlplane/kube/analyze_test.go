package kube_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

// TestStatusWriting: the status writer marks served objects Reconciled
// with their generation, and refused ones not Reconciled with the reason.
func TestStatusWriting(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	good := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: ns}}
	good.Spec.Hosts = []string{"reviews"}
	good.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "reviews"}}}}}
	if good, err = ic.NetworkingV1().VirtualServices(ns).Create(ctx, good, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}}
	bad.Spec.Hosts = []string{"reviews"}
	bad.Spec.Http = []*networkingapi.HTTPRoute{{}}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, dyn := startStatusWriter(ctx, t, env)
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	status := func(name string) (gen int64, cond map[string]any) {
		u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0, nil
		}
		gen, _, _ = unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		if len(conds) > 0 {
			cond, _ = conds[0].(map[string]any)
		}
		return gen, cond
	}
	poll(t, "good is Reconciled", 20*time.Second, func() bool {
		g, c := status("good")
		return g == 1 && c["type"] == "Reconciled" && c["status"] == "True"
	})
	poll(t, "bad is not Reconciled, with the reason", 20*time.Second, func() bool {
		_, c := status("bad")
		msg, _ := c["message"].(string)
		return c["status"] == "False" && c["reason"] == "Invalid" && strings.Contains(msg, "route")
	})
	if good, err = ic.NetworkingV1().VirtualServices(ns).Get(ctx, "good", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	good.Spec.Http[0].Timeout = durationpb.New(3 * time.Second)
	if _, err := ic.NetworkingV1().VirtualServices(ns).Update(ctx, good, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "observedGeneration follows an edit", 20*time.Second, func() bool { g, _ := status("good"); return g == 2 })
}
