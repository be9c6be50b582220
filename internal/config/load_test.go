package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

func load(t *testing.T, src string) ([]*Resource, error) {
	t.Helper()
	return LoadReader("t.yaml", strings.NewReader(src), Options{})
}

func TestLoadVirtualServiceAllVersions(t *testing.T) {
	for _, v := range []string{"v1alpha3", "v1beta1", "v1"} {
		res, err := load(t, `apiVersion: networking.istio.io/`+v+`
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    timeout: 3m
`)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if len(res) != 1 {
			t.Fatalf("%s: got %d resources", v, len(res))
		}
		r := res[0]
		vs, ok := r.Object.(*networkingv1.VirtualService)
		if !ok {
			t.Fatalf("%s: object is %T", v, r.Object)
		}
		if r.Spec != &vs.Spec {
			t.Errorf("Spec does not point at the object's spec")
		}
		if r.Key() != (Key{KindVirtualService, "default", "reviews"}) {
			t.Errorf("key = %v", r.Key())
		}
		if r.APIVersion != "networking.istio.io/"+v || vs.APIVersion != "networking.istio.io/v1" {
			t.Errorf("apiVersion %q / typed %q", r.APIVersion, vs.APIVersion)
		}
		if got := vs.Spec.Http[0].Timeout.AsDuration().String(); got != "3m0s" {
			t.Errorf("timeout = %s", got)
		}
		if got := vs.Spec.Http[0].Route[0].Destination.Subset; got != "v1" {
			t.Errorf("subset = %q", got)
		}
		if p := r.PosOf("spec.http[0].route[0].destination.subset"); p.Line != 9 {
			t.Errorf("pos of subset = %v", p)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"unknown field", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - route:
    - destination:
        host: r
        subnet: v2
`, `t.yaml:10:9: spec.http[0].route[0].destination.subnet: unknown field "subnet"`},
		{"wrong type", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: [r]
`, `t.yaml:5:9: spec.host: expected string, got list`},
		{"bad enum", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy:
    tls: {mode: MUTUALLY}
`, `t.yaml:7:17: spec.trafficPolicy.tls.mode: unknown value "MUTUALLY"`},
		{"missing name", `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {namespace: x}
spec: {}
`, `t.yaml:3:11: metadata.name: missing metadata.name`},
		{"unknown kind", `apiVersion: networking.istio.io/v1
kind: VirtualServices
metadata: {name: x}
`, `t.yaml:2:7: kind: unknown kind "VirtualServices"`},
		{"bad apiVersion", `apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: x}
`, `t.yaml:1:13: apiVersion: unsupported apiVersion "networking.istio.io/v2" for kind VirtualService`},
		{"missing kind", `apiVersion: networking.istio.io/v1
metadata: {name: x}
`, `t.yaml:1:1: kind: missing kind`},
		{"oneof twice", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - match:
    - uri: {exact: /a, prefix: /b}
`, `t.yaml:8:24: spec.http[0].match[0].uri.prefix: only one of exact, prefix, regex may be set`},
		{"bad duration", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - timeout: 10
`, `t.yaml:7:14: spec.http[0].timeout: expected duration string`},
		{"service unknown field", `apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports:
  - port: 80
    prot: TCP
`, `t.yaml:7:5: spec.ports[0].prot: unknown field "prot"`},
		{"service wrong type", `apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports:
  - port: "80"
`, `t.yaml:6:5: spec.ports[0].port: expected integer, got string`},
		{"top-level unknown", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: s}
sepc: {}
`, `t.yaml:4:1: sepc: unknown field "sepc"`},
		{"syntax", "apiVersion: v1\nkind: [\n", `t.yaml:2: invalid YAML`},
		{"duplicate", `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: g, namespace: default}
`, `t.yaml:5:1: duplicate Gateway default/g: already defined at t.yaml:1:1`},
		{"alias bomb", aliasBomb(), `too many aliases`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.src)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if _, ok := err.(ErrorList); !ok {
				t.Errorf("error is %T, want ErrorList", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n  %v\nwant substring\n  %s", err, c.want)
			}
		})
	}
}

func aliasBomb() string {
	var b strings.Builder
	b.WriteString("x0: &a0 [x,x,x,x,x,x,x,x,x,x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x, annotations: *a9}\n")
	return b.String()
}

func TestLoadListJSONAndNamespace(t *testing.T) {
	src := `{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin"},
  "spec": {"ports": [{"name": "http", "port": 8000, "targetPort": 8080}], "selector": {"app": "httpbin"}}},
 {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication",
  "metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}
]}`
	res, err := LoadReader("l.json", strings.NewReader(src), Options{DefaultNamespace: "foo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("got %d resources", len(res))
	}
	svc := res[0].Object.(*corev1.Service)
	if svc.Namespace != "foo" || svc.Spec.Ports[0].TargetPort.IntVal != 8080 {
		t.Errorf("service = %+v", svc)
	}
	if res[1].Namespace != "istio-system" || res[1].Pos.Line != 4 {
		t.Errorf("peer authn = %v at %v", res[1].Key(), res[1].Pos)
	}
}

func TestLoadMeshConfigMap(t *testing.T) {
	res, err := load(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
`)
	if err != nil {
		t.Fatal(err)
	}
	mc := res[0].Object.(*MeshConfig)
	if res[0].Kind != KindMeshConfig || mc.Spec.GetOutboundTrafficPolicy().GetMode().String() != "REGISTRY_ONLY" {
		t.Fatalf("got %v %v", res[0].Kind, mc.Spec.GetOutboundTrafficPolicy())
	}
	if mc.Spec.TrustDomain != "cluster.local" {
		t.Errorf("defaults not applied: trustDomain %q", mc.Spec.TrustDomain)
	}
	_, err = load(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY
`)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:7:") {
		t.Errorf("error %v, want one on line 7", err)
	}
}

func TestLoadPathsIgnoreAndStdin(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gw := "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: %s}\nspec: {}\n"
	write("a.yaml", strings.ReplaceAll(gw, "%s", "a"))
	write("sub/b.yml", strings.ReplaceAll(gw, "%s", "b"))
	write("sub/c.json", `{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{"name":"c"},"spec":{}}`)
	write("sub/notes.txt", "not config")
	write("invalid/bad.yaml", "kind: nope\n")
	write("tasks/x/bad.yaml", "kind: nope\n")
	write(".hidden/bad.yaml", "kind: nope\n")
	write(".weftignore", "# comment\ninvalid/\ntasks/\n")
	res, err := LoadPaths([]string{dir, "-"}, Options{Stdin: strings.NewReader(strings.ReplaceAll(gw, "%s", "d"))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c,d" {
		t.Errorf("loaded %s", got)
	}
	if res[3].Pos.File != StdinName {
		t.Errorf("stdin file = %q", res[3].Pos.File)
	}
	// Passing the same file twice is a duplicate naming both places.
	_, err = LoadPaths([]string{filepath.Join(dir, "a.yaml"), dir}, Options{})
	if err == nil || !strings.Contains(err.Error(), "already defined at "+filepath.Join(dir, "a.yaml")+":1:1") {
		t.Errorf("err = %v", err)
	}
	_, err = LoadPaths([]string{filepath.Join(dir, "missing.yaml")}, Options{})
	if err == nil {
		t.Error("missing file: no error")
	}
}
