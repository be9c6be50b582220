package bootstrap

import (
	"io"
	"testing"
)

// An injected sidecar says it runs in a pod with Istio's NODE_NAME, which
// the injector sets in ISTIO_META_NODE_NAME; a proxy outside a pod (a VM,
// the demo) sends none.
func TestNodeNameFromIstioEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env: nil, want: ""},
		{env: map[string]string{"ISTIO_META_NODE_NAME": "weft-node"}, want: "weft-node"},
		{env: map[string]string{"ISTIO_META_NODE_NAME": "a", "WEFT_NODE_NAME": "b"}, want: "b"},
		{env: map[string]string{"ISTIO_META_NODE_NAME": "a"}, args: []string{"--node-name", "c"}, want: "c"},
	} {
		c, err := Parse("sidecar", tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Meta.NodeName != tc.want {
			t.Errorf("env %v args %v: NodeName %q, want %q", tc.env, tc.args, c.Meta.NodeName, tc.want)
		}
		if got := c.Meta.Node().GetMetadata().GetFields()["NODE_NAME"].GetStringValue(); got != tc.want {
			t.Errorf("env %v args %v: node metadata NODE_NAME %q, want %q", tc.env, tc.args, got, tc.want)
		}
	}
}
