package inject_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func injectorConfig() *inject.Config {
	return &inject.Config{ProxyImage: "example/weft-proxy:t", XDSAddress: "istiod.istio-system.svc:15012", Policy: inject.PolicyEnabled}
}

// startWebhook serves the injector with a certificate from a Weft CA and
// registers it with the API server by URL (no Service routing without a
// node), its caBundle filled in by PatchCABundle as the leader does.
func startWebhook(t *testing.T, env *kubetest.Env) {
	t.Helper()
	startWebhookWith(t, env, &inject.Webhook{Config: injectorConfig()})
}

func startWebhookWith(t *testing.T, env *kubetest.Env, wh *inject.Webhook) {
	t.Helper()
	authority, err := ca.New(ca.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- inject.Serve(ctx, ln, wh, inject.ServingConfig(authority, []string{"127.0.0.1"}, time.Hour, nil))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	url := fmt.Sprintf("https://%s/inject", ln.Addr())
	mwc := inject.Webhooks("", admissionregv1.WebhookClientConfig{URL: &url})
	api := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(context.Background(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })
	if err := inject.PatchCABundle(context.Background(), env.Client, mwc.Name, authority.TrustBundle()); err != nil {
		t.Fatal(err)
	}
	got, err := api.Get(context.Background(), mwc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range got.Webhooks {
		if !bytes.Equal(h.ClientConfig.CABundle, authority.TrustBundle()) {
			t.Fatalf("webhook %s caBundle not patched", h.Name)
		}
	}
}

func appPod(name string, labels, ann map[string]string) *corev1.Pod {
	l := map[string]string{"app": "reviews", "version": "v1"}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "reviews", Image: "reviews:1",
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}}},
		}}},
	}
}

func hasSidecar(p *corev1.Pod) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == "istio-proxy" && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return p.Annotations["sidecar.istio.io/status"] != ""
		}
	}
	return false
}

// waitActive polls with dry-run creations until the API server calls the
// webhook (it loads webhook configurations asynchronously).
func waitActive(t *testing.T, env *kubetest.Env, ns string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), appPod("probe", nil, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && hasSidecar(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never called (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWebhookOnAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	startWebhook(t, env)
	ctx := context.Background()
	labelled := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	rev := env.Namespace(t, map[string]string{"istio.io/rev": "default"})
	plain := env.Namespace(t, nil)
	disabled := env.Namespace(t, map[string]string{"istio-injection": "disabled"})
	waitActive(t, env, labelled)

	for _, tc := range []struct {
		name, ns string
		pod      *corev1.Pod
		want     bool
	}{
		{"labelled namespace", labelled, appPod("a", nil, nil), true},
		{"revision namespace", rev, appPod("a", nil, nil), true},
		{"pod label false", labelled, appPod("b", map[string]string{"sidecar.istio.io/inject": "false"}, nil), false},
		{"pod annotation false", labelled, appPod("c", nil, map[string]string{"sidecar.istio.io/inject": "false"}), false},
		{"unlabelled namespace", plain, appPod("a", nil, nil), false},
		{"unlabelled namespace, pod label true", plain, appPod("b", map[string]string{"sidecar.istio.io/inject": "true"}, nil), true},
		{"disabled namespace, pod label true", disabled, appPod("a", map[string]string{"sidecar.istio.io/inject": "true"}, nil), false},
		{"host network", labelled, func() *corev1.Pod { p := appPod("d", nil, nil); p.Spec.HostNetwork = true; return p }(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, err := env.Client.CoreV1().Pods(tc.ns).Create(ctx, tc.pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			stored, err := env.Client.CoreV1().Pods(tc.ns).Get(ctx, created.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := hasSidecar(stored); got != tc.want {
				t.Fatalf("sidecar = %v, want %v; init containers %d, containers %d", got, tc.want, len(stored.Spec.InitContainers), len(stored.Spec.Containers))
			}
			if !tc.want {
				if len(stored.Spec.InitContainers) != 0 || len(stored.Spec.Containers) != 1 || stored.Labels["security.istio.io/tlsMode"] != "" {
					t.Fatalf("pod was modified: %+v", stored.Spec)
				}
				return
			}
			if p := stored.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Path != "/app-health/reviews/readyz" || p.Port.IntVal != 15020 {
				t.Errorf("probe not rewritten: %+v", p)
			}
		})
	}

	t.Run("already injected pod is not injected again", func(t *testing.T) {
		p, err := inject.Inject(injectorConfig(), appPod("twice", nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := env.Client.CoreV1().Pods(labelled).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(stored.Spec.InitContainers); n != 2 {
			t.Fatalf("%d init containers, want 2", n)
		}
	})

	t.Run("invalid annotation is refused with its name", func(t *testing.T) {
		_, err := env.Client.CoreV1().Pods(labelled).Create(ctx, appPod("bad", nil, map[string]string{"sidecar.istio.io/proxyMemory": "lots"}), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "sidecar.istio.io/proxyMemory") {
			t.Fatalf("err = %v, want a refusal naming sidecar.istio.io/proxyMemory", err)
		}
	})
}

// TestKubeInjectEqualsWebhook: the same pod injected by `weft kube-inject`
// offline (and created in a namespace the webhook ignores) and by the
// webhook is stored identically.
func TestKubeInjectEqualsWebhook(t *testing.T) {
	env := kubetest.Shared(t)
	startWebhook(t, env)
	labelled := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	plain := env.Namespace(t, nil)
	waitActive(t, env, labelled)

	pod := appPod("same", nil, map[string]string{
		"sidecar.istio.io/proxyCPU": "300m", "proxy.istio.io/config": "terminationDrainDuration: 20s",
		"traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
	})
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9080)}}}
	if !sameAsWebhook(t, env, injectorConfig(), pod, labelled, plain) {
		t.Fatal("not injected")
	}
}

// sameAsWebhook stores pod as `weft kube-inject` with c writes it (in
// plain, a namespace the webhook ignores) and as the webhook injects it
// (in labelled), fails t where the two differ, and reports whether the
// pod got the sidecar (the same answer both ways, or t fails).
func sameAsWebhook(t *testing.T, env *kubetest.Env, c *inject.Config, pod *corev1.Pod, labelled, plain string) bool {
	t.Helper()
	ctx := context.Background()
	in, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := inject.Documents(c, bytes.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	var offline corev1.Pod
	if err := yaml.UnmarshalStrict(out.Bytes(), &offline); err != nil {
		t.Fatal(err)
	}
	fromFile, err := env.Client.CoreV1().Pods(plain).Create(ctx, &offline, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fromHook, err := env.Client.CoreV1().Pods(labelled).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hasSidecar(fromHook) != hasSidecar(fromFile) {
		t.Errorf("sidecar: webhook %v, kube-inject %v", hasSidecar(fromHook), hasSidecar(fromFile))
	}
	// The API server adds its own token volume (random name): before the
	// webhook sees the pod, after kube-inject's volumes. Compare volumes
	// as a set, under one name.
	for _, p := range []*corev1.Pod{fromFile, fromHook} {
		normaliseAPIVolume(p)
	}
	for _, part := range []struct {
		name string
		a, b any
	}{
		{"labels", fromFile.Labels, fromHook.Labels},
		{"annotations", fromFile.Annotations, fromHook.Annotations},
		{"spec", fromFile.Spec, fromHook.Spec},
	} {
		a, _ := json.MarshalIndent(part.a, "", " ")
		b, _ := json.MarshalIndent(part.b, "", " ")
		if !bytes.Equal(a, b) {
			t.Errorf("%s %s differ:\nkube-inject %s\nwebhook     %s", pod.Name, part.name, a, b)
		}
	}
	return hasSidecar(fromHook)
}

// TestWebhookLatency measures pod creation through the webhook against
// creation without it (the same API server), and reports both.
func TestWebhookLatency(t *testing.T) {
	env := kubetest.Shared(t)
	startWebhook(t, env)
	ctx := context.Background()
	labelled := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	plain := env.Namespace(t, nil)
	waitActive(t, env, labelled)
	const n = 30
	measure := func(ns string) time.Duration {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, appPod(fmt.Sprintf("lat-%d", i), nil, nil), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[n/2]
	}
	with, without := measure(labelled), measure(plain)
	t.Logf("pod create, median of %d: %v with injection, %v without (webhook adds about %v)", n, with, without, with-without)
}

func normaliseAPIVolume(p *corev1.Pod) {
	const prefix = "kube-api-access-"
	for i := range p.Spec.Volumes {
		if strings.HasPrefix(p.Spec.Volumes[i].Name, prefix) {
			p.Spec.Volumes[i].Name = prefix
		}
	}
	sort.Slice(p.Spec.Volumes, func(i, j int) bool { return p.Spec.Volumes[i].Name < p.Spec.Volumes[j].Name })
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for i := range c.VolumeMounts {
				if strings.HasPrefix(c.VolumeMounts[i].Name, prefix) {
					c.VolumeMounts[i].Name = prefix
				}
			}
		}
	}
}

// TestAnalyzeInjection: a namespace labelled after its pods were created
// has pods without the proxy (IST0103); an unlabelled namespace is
// reported as not injected (IST0102).
func TestAnalyzeInjection(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	a, err := install.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds, _ := install.Decode(install.CRDs)
	if _, err := a.Apply(ctx, crds, false); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, nil)
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, appPod("early", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, appPod("optout", map[string]string{"sidecar.istio.io/inject": "false"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cli.Main([]string{"analyze", "-k", "--kubeconfig", env.Kubeconfig, "-n", ns}, strings.NewReader(""), &out, &out)
	var n *corev1.Namespace
	if !strings.Contains(out.String(), "IST0102") || strings.Contains(out.String(), "IST0103") {
		t.Fatalf("unlabelled namespace:\n%s", out.String())
	}
	n, err = env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["istio-injection"] = "enabled"
	if _, err := env.Client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	cli.Main([]string{"analyze", "-k", "--kubeconfig", env.Kubeconfig, "-n", ns}, strings.NewReader(""), &out, &out)
	s := out.String()
	if strings.Contains(s, "IST0102") || !strings.Contains(s, "IST0103") || !strings.Contains(s, "Pod "+ns+"/early") || strings.Contains(s, "optout") {
		t.Fatalf("labelled namespace:\n%s", s)
	}
}
