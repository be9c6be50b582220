package inject

import (
	"strings"
	"testing"
)

func TestFromConfigMap(t *testing.T) {
	base := &Config{ProxyImage: "ghcr.io/weftmesh/weft-proxy:1.0", Policy: PolicyEnabled}
	tests := []struct {
		name    string
		data    map[string]string
		policy  Policy
		image   string
		never   int
		always  int
		wantErr string
	}{
		{name: "empty", data: nil, policy: PolicyEnabled, image: base.ProxyImage},
		{name: "istio's own keys are ignored", data: map[string]string{
			"config": "policy: enabled\nalwaysInjectSelector:\n  []\nneverInjectSelector:\n  - matchExpressions:\n    - {key: openshift.io/build.name, operator: Exists}\ninjectedAnnotations: {}\ndefaultTemplates: [sidecar]\ntemplate: \"{{ Template_Version_And_Istio_Version_Mismatched_Check_Installation }}\"\ntemplates:\n  sidecar: |\n    spec: {}\n",
			"values": `{"global":{"hub":"weft.local","tag":"dev","proxy":{"image":"proxyv2"},"istioNamespace":"istio-system"},"revision":"","sidecarInjectorWebhook":{"enableNamespacesByDefault":false}}`,
		}, policy: PolicyEnabled, image: "weft.local/proxyv2:dev", never: 1},
		{name: "disabled with always", data: map[string]string{"config": "policy: disabled\nalwaysInjectSelector:\n- matchLabels: {app: ratings}\n"},
			policy: PolicyDisabled, image: base.ProxyImage, always: 1},
		{name: "full image and numeric tag", data: map[string]string{"values": `{"global":{"proxy":{"image":"example.com/p:7"}}}`}, policy: PolicyEnabled, image: "example.com/p:7"},
		{name: "numeric tag", data: map[string]string{"values": `{"global":{"hub":"h","tag":1.24}}`}, policy: PolicyEnabled, image: "h/weft-proxy:1.24"},
		{name: "bad policy", data: map[string]string{"config": "policy: sometimes"}, wantErr: `policy "sometimes"`},
		{name: "bad selector", data: map[string]string{"config": "neverInjectSelector:\n- matchExpressions:\n  - {key: a, operator: Bogus}\n"}, wantErr: "neverInjectSelector[0]"},
		{name: "bad yaml", data: map[string]string{"config": "policy: [\n"}, wantErr: "config:"},
		{name: "bad values", data: map[string]string{"values": "{"}, wantErr: "values:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromConfigMap(base, tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Policy != tc.policy || c.ProxyImage != tc.image || len(c.NeverInjectSelector) != tc.never || len(c.AlwaysInjectSelector) != tc.always {
				t.Errorf("got policy %q image %q never %d always %d", c.Policy, c.ProxyImage, len(c.NeverInjectSelector), len(c.AlwaysInjectSelector))
			}
			if base.ProxyImage != "ghcr.io/weftmesh/weft-proxy:1.0" {
				t.Error("base changed")
			}
		})
	}
}

// What install renders reads back as the same settings.
func TestConfigMapDataRoundTrip(t *testing.T) {
	data, err := ConfigMapData("weft.local", "dev", "canary")
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromConfigMap(&Config{ProxyImage: "x/y:z"}, data)
	if err != nil {
		t.Fatal(err)
	}
	if c.ProxyImage != "weft.local/weft-proxy:dev" || c.Policy != PolicyEnabled {
		t.Errorf("round trip: %+v", c)
	}
	if ConfigMapName("canary") != "istio-sidecar-injector-canary" || ConfigMapName("") != "istio-sidecar-injector" {
		t.Error("ConfigMapName")
	}
}
