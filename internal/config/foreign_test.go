package config

import (
	"strings"
	"testing"
)

// What weft analyze meets in real repositories: istioctl analyze skips
// kinds it has no schema for (pilot/pkg/config/file/store.go parseChunk:
// unknownSchemaError) and reports documents with no apiVersion and kind as
// files it could not parse. Weft does the same, and names the Istio kinds
// it does not implement.
func TestForeignDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, doc   string
		class       ErrorClass
		want        string // "" = skipped without error
		unsupported string // message given to Options.Unsupported
	}{
		{name: "deployment", doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1}\n"},
		{name: "other configmap", doc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: grafana}\ndata: {a: b}\n"},
		{name: "third-party CR", doc: "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: y}\n"},
		{name: "ingress", doc: "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\n"},
		{name: "helm chart", doc: "apiVersion: v2\nname: web\nversion: 0.1.0\n"},
		{name: "helm values", doc: "replicaCount: 2\nimage: {repository: nginx}\n", class: ClassFile, want: "not a Kubernetes object"},
		{name: "binary", doc: "\x00\x01binary", class: ClassFile, want: "binary file"},
		{name: "yaml syntax", doc: "a: [1, 2\n", class: ClassFile, want: "invalid YAML"},
		{name: "envoyfilter", doc: "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: x}\n",
			unsupported: "EnvoyFilter (networking.istio.io/v1alpha3) is an Istio kind that Weft does not implement yet"},
		{name: "wasmplugin", doc: "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\n",
			unsupported: "WasmPlugin (extensions.istio.io/v1alpha1) is an Istio kind"},
		{name: "proxyconfig", doc: "apiVersion: networking.istio.io/v1beta1\nkind: ProxyConfig\nmetadata: {name: x}\n",
			unsupported: "ProxyConfig (networking.istio.io/v1beta1) is an Istio kind"},
		{name: "httproute", doc: "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\n",
			unsupported: "HTTPRoute (gateway.networking.k8s.io/v1) is a Gateway API kind"},
		{name: "istio typo", doc: "apiVersion: networking.istio.io/v1\nkind: VirtualServices\nmetadata: {name: x}\n",
			class: ClassSchema, want: `unknown kind "VirtualServices"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*Error
			res, err := LoadReader("t.yaml", strings.NewReader(tc.doc), Options{Unsupported: func(e *Error) { got = append(got, e) }})
			if len(res) != 0 {
				t.Errorf("decoded %d resources, want none", len(res))
			}
			switch {
			case tc.unsupported != "":
				if err != nil || len(got) != 1 || !strings.Contains(got[0].Msg, tc.unsupported) || got[0].Class != ClassUnsupported {
					t.Errorf("want one unsupported-kind notice %q, got %v (err %v)", tc.unsupported, got, err)
				}
			case tc.want == "":
				if err != nil || len(got) != 0 {
					t.Errorf("want the document skipped silently, got %v, %v", err, got)
				}
			default:
				list, _ := err.(ErrorList)
				if len(list) != 1 || !strings.Contains(list[0].Msg, tc.want) || list[0].Class != tc.class {
					t.Errorf("want one class-%d error %q, got %v", tc.class, tc.want, err)
				}
			}
		})
	}
	// Without Options.Unsupported (the control plane), an unimplemented
	// Istio kind stays an error: applying an EnvoyFilter must not look
	// like it worked.
	_, err := LoadReader("t.yaml", strings.NewReader("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: x}\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "does not implement") {
		t.Errorf("EnvoyFilter without Options.Unsupported: %v", err)
	}
}
