package inject

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

func testConfig() *Config {
	return &Config{ProxyImage: "example/weft-proxy:t", XDSAddress: "istiod.istio-system.svc:15012", Policy: PolicyEnabled}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-v1-abc", Namespace: "bookinfo", Labels: map[string]string{"app": "reviews", "version": "v1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "reviews", Image: "reviews:1",
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}}, TimeoutSeconds: 2},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9080)}}},
		}}},
	}
}

func TestRequired(t *testing.T) {
	c := testConfig()
	c.NeverInjectSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"never": "1"}}}
	c.AlwaysInjectSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"always": "1"}}}
	disabled := *c
	disabled.Policy = PolicyDisabled
	injected, err := Inject(c, testPod())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *Config
		mod  func(*corev1.Pod)
		want bool
	}{
		{"default policy", c, func(*corev1.Pod) {}, true},
		{"host network", c, func(p *corev1.Pod) { p.Spec.HostNetwork = true }, false},
		{"kube-system", c, func(p *corev1.Pod) { p.Namespace = "kube-system" }, false},
		{"label false", c, func(p *corev1.Pod) { p.Labels["sidecar.istio.io/inject"] = "false" }, false},
		{"annotation false", c, func(p *corev1.Pod) { p.Annotations = map[string]string{"sidecar.istio.io/inject": "false"} }, false},
		{"label beats annotation", c, func(p *corev1.Pod) {
			p.Labels["sidecar.istio.io/inject"] = "true"
			p.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
		}, true},
		{"never selector", c, func(p *corev1.Pod) { p.Labels["never"] = "1" }, false},
		{"explicit beats never", c, func(p *corev1.Pod) { p.Labels["never"] = "1"; p.Labels["sidecar.istio.io/inject"] = "true" }, true},
		{"policy disabled", &disabled, func(*corev1.Pod) {}, false},
		{"always selector under disabled policy", &disabled, func(p *corev1.Pod) { p.Labels["always"] = "1" }, true},
		{"explicit true under disabled policy", &disabled, func(p *corev1.Pod) { p.Annotations = map[string]string{"sidecar.istio.io/inject": "yes"} }, true},
		{"already injected", c, func(p *corev1.Pod) { *p = *injected.DeepCopy() }, false},
		{"istio-proxy container present", c, func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "istio-proxy"})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPod()
			tc.mod(p)
			got, err := Required(tc.cfg, p)
			if err != nil || got != tc.want {
				t.Fatalf("Required = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestNamespaceSelected(t *testing.T) {
	for _, tc := range []struct {
		ns, pod map[string]string
		rev     string
		want    bool
	}{
		{map[string]string{"istio-injection": "enabled"}, nil, "", true},
		{map[string]string{"istio-injection": "enabled"}, map[string]string{"sidecar.istio.io/inject": "false"}, "", false},
		{map[string]string{"istio-injection": "disabled"}, map[string]string{"sidecar.istio.io/inject": "true"}, "", false},
		{map[string]string{"istio.io/rev": "default"}, nil, "", true},
		{map[string]string{"istio.io/rev": "canary"}, nil, "", false},
		{map[string]string{"istio.io/rev": "canary"}, nil, "canary", true},
		{map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, nil, "canary", false},
		{nil, nil, "", false},
		{nil, map[string]string{"sidecar.istio.io/inject": "true"}, "", true},
	} {
		if got := NamespaceSelected(tc.ns, tc.pod, tc.rev); got != tc.want {
			t.Errorf("NamespaceSelected(%v, %v, %q) = %v, want %v", tc.ns, tc.pod, tc.rev, got, tc.want)
		}
	}
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestInjectShape(t *testing.T) {
	p := testPod()
	p.Annotations = map[string]string{
		"sidecar.istio.io/proxyCPU":                        "250m",
		"sidecar.istio.io/proxyMemory":                     "200Mi",
		"proxy.istio.io/config":                            "terminationDrainDuration: 12s\n",
		"traffic.sidecar.istio.io/excludeOutboundPorts":    "3306",
		"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8",
	}
	orig := p.DeepCopy()
	out, err := Inject(testConfig(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(t, p, orig) {
		t.Fatal("Inject modified its input")
	}
	if len(out.Spec.InitContainers) != 2 || out.Spec.InitContainers[0].Name != "istio-init" || out.Spec.InitContainers[1].Name != "istio-proxy" {
		t.Fatalf("init containers: %+v", out.Spec.InitContainers)
	}
	ini, proxy := out.Spec.InitContainers[0], out.Spec.InitContainers[1]
	args := strings.Join(ini.Args, " ")
	for _, want := range []string{"iptables", "--proxy-uid=1337", "--exclude-outbound-ports=3306", "--include-outbound-ip-ranges=10.0.0.0/8", "--exclude-inbound-ports=15090,15021,15020"} {
		if !strings.Contains(args, want) {
			t.Errorf("istio-init args %q lack %q", args, want)
		}
	}
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("proxy is not a native sidecar")
	}
	if *proxy.SecurityContext.RunAsUser != 1337 {
		t.Error("proxy not uid 1337")
	}
	if q := proxy.Resources.Requests[corev1.ResourceCPU]; q.String() != "250m" {
		t.Errorf("cpu request %s", q.String())
	}
	if q := proxy.Resources.Requests[corev1.ResourceMemory]; q.String() != "200Mi" {
		t.Errorf("memory request %s", q.String())
	}
	if v, _ := env(proxy, "WEFT_DRAIN_DURATION"); v != "12s" {
		t.Errorf("drain %q", v)
	}
	if v, _ := env(proxy, "ISTIO_META_APP_CONTAINERS"); v != "reviews" {
		t.Errorf("app containers %q", v)
	}
	if v, _ := env(proxy, "ISTIO_META_POD_PORTS"); v != `[{"containerPort":9080,"name":"http","protocol":"TCP"}]` {
		t.Errorf("pod ports %q", v)
	}
	if proxy.ReadinessProbe.HTTPGet.Port.IntVal != 15021 {
		t.Error("readiness not on 15021")
	}
	// Probes: rewritten to the sidecar, originals kept for it.
	app := out.Spec.Containers[0]
	if g := app.ReadinessProbe.HTTPGet; g == nil || g.Path != "/app-health/reviews/readyz" || g.Port.IntVal != 15020 {
		t.Errorf("readiness probe %+v", app.ReadinessProbe)
	}
	if g := app.LivenessProbe.HTTPGet; g == nil || g.Path != "/app-health/reviews/livez" || app.LivenessProbe.TCPSocket != nil {
		t.Errorf("liveness probe %+v", app.LivenessProbe)
	}
	probers, _ := env(proxy, "ISTIO_KUBE_APP_PROBERS")
	want := `{"/app-health/reviews/livez":{"tcpSocket":{"port":9080},"timeoutSeconds":1},"/app-health/reviews/readyz":{"httpGet":{"path":"/health","port":9080,"scheme":"HTTP"},"timeoutSeconds":2}}`
	if probers != want {
		t.Errorf("ISTIO_KUBE_APP_PROBERS\n got %s\nwant %s", probers, want)
	}
	var st Status
	if err := json.Unmarshal([]byte(out.Annotations["sidecar.istio.io/status"]), &st); err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.InitContainers, ",") != "istio-init,istio-proxy" || st.Revision != "default" {
		t.Errorf("status %+v", st)
	}
	if out.Labels["security.istio.io/tlsMode"] != "istio" || out.Labels["service.istio.io/canonical-name"] != "reviews" || out.Labels["service.istio.io/canonical-revision"] != "v1" {
		t.Errorf("labels %v", out.Labels)
	}
	var token bool
	for _, v := range out.Spec.Volumes {
		if v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken.Audience == "istio-ca" {
			token = true
		}
	}
	if !token {
		t.Error("no istio-ca token volume")
	}
	// Regular-container mode.
	c := testConfig()
	c.RegularContainer = true
	out2, err := Inject(c, testPod())
	if err != nil {
		t.Fatal(err)
	}
	if len(out2.Spec.InitContainers) != 1 || out2.Spec.Containers[len(out2.Spec.Containers)-1].Name != "istio-proxy" {
		t.Error("regular container mode")
	}
}

func TestInjectInvalidAnnotations(t *testing.T) {
	for ann, want := range map[string]string{
		"sidecar.istio.io/proxyCPU":                        "sidecar.istio.io/proxyCPU",
		"proxy.istio.io/config":                            "proxy.istio.io/config",
		"traffic.sidecar.istio.io/excludeOutboundPorts":    "traffic.sidecar.istio.io/excludeOutboundPorts",
		"traffic.sidecar.istio.io/excludeOutboundIPRanges": "traffic.sidecar.istio.io/excludeOutboundIPRanges",
	} {
		p := testPod()
		p.Annotations = map[string]string{ann: "nonsense: [x"}
		if _, err := Inject(testConfig(), p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want one naming it", ann, err)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestPatchAppliesToTheMutatedPod(t *testing.T) {
	p := testPod()
	out, err := Inject(testConfig(), p)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := Patch(p, out)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := json.Marshal(p)
	got, err := ops.Apply(orig)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(out)
	var g, w any
	json.Unmarshal(got, &g)
	json.Unmarshal(want, &w)
	if !equalJSON(t, g, w) {
		t.Fatalf("patched pod differs:\n got %s\nwant %s", got, want)
	}
}

func TestDocuments(t *testing.T) {
	in := `# a comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  namespace: bookinfo
spec:
  selector:
    matchLabels: {app: reviews}
  template:
    metadata:
      labels: {app: reviews, version: v1}
    spec:
      containers:
      - name: reviews
        image: reviews:1
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  ports: [{port: 9080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: skip
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  containers: [{name: c, image: x}]
`
	var out bytes.Buffer
	if err := Documents(testConfig(), strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(out.String(), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("%d documents:\n%s", len(docs), out.String())
	}
	var d struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(docs[0]), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Spec.Template.Spec.InitContainers) != 2 || d.Spec.Template.Annotations["sidecar.istio.io/status"] == "" {
		t.Errorf("deployment not injected:\n%s", docs[0])
	}
	if v, _ := env(d.Spec.Template.Spec.InitContainers[1], "ISTIO_META_WORKLOAD_NAME"); v != "reviews-v1" {
		t.Errorf("workload name %q", v)
	}
	if !strings.Contains(docs[1], "kind: Service") {
		t.Errorf("service changed:\n%s", docs[1])
	}
	if strings.Contains(docs[2], "istio-proxy") {
		t.Errorf("opted-out pod injected:\n%s", docs[2])
	}
	// Injecting the output again changes nothing.
	var again bytes.Buffer
	if err := Documents(testConfig(), strings.NewReader(out.String()), &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("second kube-inject changed the output:\n%s", again.String())
	}
	if err := Documents(testConfig(), strings.NewReader("apiVersion: v1\nkind: Pod\nspec: {bogus: 1}\n"), &out); err == nil {
		t.Error("unknown field accepted")
	}
}
