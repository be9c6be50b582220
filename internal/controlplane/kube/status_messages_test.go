package kube_test

import (
	"context"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/kubetest"
)

// TestStatusValidationMessages: the status writer puts the analyzers'
// findings into status.validationMessages as istiod does (code, level,
// documentation URL), readable by Istio's own typed client; fixing the
// cause removes them; and an unrelated change writes nothing to an object
// whose status is current (no write loop on our own status updates).
func TestStatusValidationMessages(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	vs := func(name, dest string) *networkingv1.VirtualService {
		v := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		v.Spec.Hosts = []string{name}
		v.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: dest}}}}}
		return v
	}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, vs("web", "backend"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startStatusWriter(ctx, t, env)
	get := func(name string) *networkingv1.VirtualService {
		v, err := ic.NetworkingV1().VirtualServices(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	poll(t, "IST0101 in web's validationMessages, next to Reconciled", 20*time.Second, func() bool {
		st := &get("web").Status
		if len(st.ValidationMessages) != 1 || len(st.Conditions) != 1 || st.Conditions[0].Status != "True" {
			return false
		}
		m := st.ValidationMessages[0]
		return m.GetType().GetCode() == "IST0101" && m.GetLevel().String() == "ERROR" &&
			m.GetDocumentationUrl() == "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
	})

	// The missing host appears: the message goes.
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "web's validationMessages cleared", 20*time.Second, func() bool {
		st := &get("web").Status
		return len(st.ValidationMessages) == 0 && len(st.Conditions) == 1
	})

	// Settled: another object's change is processed (its status written)
	// without a write to web.
	rv := get("web").ResourceVersion
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, vs("other", "backend"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "other's status written", 20*time.Second, func() bool { return len(get("other").Status.Conditions) == 1 })
	if got := get("web").ResourceVersion; got != rv {
		t.Errorf("web was written again (resourceVersion %s -> %s) although its status did not change", rv, got)
	}
}
