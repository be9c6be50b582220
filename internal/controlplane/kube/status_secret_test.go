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

// TestStatusMissingCredential: a Gateway whose credentialName Secret does
// not exist carries IST0101 in status.validationMessages (the source
// watches exactly the referenced Secrets, so none in it means none at
// all); creating the Secret clears it.
func TestStatusMissingCredential(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's own pod: on an API server shared with other tests'
	// workloads, a selector without one is IST0101 of its own.
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "weft-proxy"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: ns}}
	gw.Spec.Selector = map[string]string{"istio": "ingressgateway"}
	gw.Spec.Servers = []*networkingapi.Server{{
		Port: &networkingapi.Port{Number: 443, Name: "https", Protocol: "HTTPS"},
		// A host of its own: the same host, port and selector in another
		// test's namespace on this shared API server is IST0145.
		Hosts: []string{ns + ".example.com"},
		Tls:   &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE, CredentialName: "gw-cred"},
	}}
	if _, err := ic.NetworkingV1().Gateways(ns).Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startStatusWriter(ctx, t, env)
	get := func() *networkingv1.Gateway {
		g, err := ic.NetworkingV1().Gateways(ns).Get(ctx, "gw", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	poll(t, "IST0101 for the missing credential in gw's validationMessages", 20*time.Second, func() bool {
		st := &get().Status
		for _, m := range st.ValidationMessages {
			if m.GetType().GetCode() == "IST0101" && m.GetLevel().String() == "ERROR" {
				return len(st.Conditions) == 1 && st.Conditions[0].Status == "True"
			}
		}
		return false
	})
	cert, key := selfSignedPEM(t, ns+".example.com")
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "gw-cred"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": cert, "tls.key": key},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "gw's validationMessages cleared once the Secret exists", 20*time.Second, func() bool {
		return len(get().Status.ValidationMessages) == 0
	})
}
