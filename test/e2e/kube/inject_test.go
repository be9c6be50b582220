package kube_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestInjectionWebhook: `weft control-plane --kubeconfig --webhook-address`
// serves the injector with a certificate from its CA, the leader fills in
// the MutatingWebhookConfiguration's caBundle, and the API server then
// injects pods of labelled namespaces.
func TestInjectionWebhook(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	applyCRDs(t, env)
	sys := env.Namespace(t, nil)
	hookAddr := "127.0.0.1:" + strconv.Itoa(kit.FreePort(t))
	url := "https://" + hookAddr + "/inject"
	mwc := inject.Webhooks("", admissionregv1.WebhookClientConfig{URL: &url})
	api := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })

	served := make(chan struct{})
	var once sync.Once
	start(t, "weft", func(l string) {
		if strings.Contains(l, "control plane serving") {
			once.Do(func() { close(served) })
		}
	}, "control-plane", "--kubeconfig", env.Kubeconfig, "--system-namespace", sys, "--replica-id", "cp-inject", "--leader-lease", "3s",
		"--secure-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:"+strconv.Itoa(kit.FreePort(t)), "--monitoring-address", "127.0.0.1:0",
		"--webhook-address", hookAddr, "--proxy-hub", "registry.test/weft", "--proxy-tag", "e2e")
	select {
	case <-served:
	case <-time.After(60 * time.Second):
		t.Fatal("control plane did not start")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := api.Get(ctx, mwc.Name, metav1.GetOptions{})
		if err == nil && len(got.Webhooks) > 0 && bytes.Contains(got.Webhooks[0].ClientConfig.CABundle, []byte("BEGIN CERTIFICATE")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader never set the webhook's caBundle")
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	ns := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	for deadline := time.Now().Add(30 * time.Second); ; {
		// Dry-run until the API server has loaded the configuration.
		p, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && p.Annotations["sidecar.istio.io/status"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods never injected (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stored, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var proxy *corev1.Container
	for i, c := range stored.Spec.InitContainers {
		if c.Name == "istio-proxy" {
			proxy = &stored.Spec.InitContainers[i]
		}
	}
	if proxy == nil || proxy.Image != "registry.test/weft/weft-proxy:e2e" {
		t.Fatalf("stored pod has no injected proxy of the configured image: %+v", stored.Spec.InitContainers)
	}
	wantXDS := fmt.Sprintf("istiod.%s.svc:15012", sys)
	for _, e := range proxy.Env {
		if e.Name == "WEFT_XDS" && e.Value != wantXDS {
			t.Errorf("WEFT_XDS = %q, want %q", e.Value, wantXDS)
		}
	}
}
