package registry

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/node"
)

// A sidecar killed without announcing its drain keeps its registration
// for the grace period; once its Pod is deleted the control plane no
// longer knows the registration came from a pod. The sidecar said so
// itself (Istio's NODE_NAME), so with the Kubernetes source it is still
// never a healthy endpoint; a VM's proxy (no NODE_NAME) is, and in the
// directory mode nothing changes.
func TestGonePodProxyIsNotHealthy(t *testing.T) {
	labels := map[string]string{"app": "reviews"}
	svc := kubeService("default", "reviews", labels, corev1.ServicePort{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)})
	// What the cluster still has: another reviews pod, ready in the slices.
	yes := true
	slice := reviewsSlice(9080, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-live", Namespace: "default"}})
	live := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reviews-live", Namespace: "default", Labels: labels},
		Status: corev1.PodStatus{PodIP: "10.0.0.1"}}
	kube := []*config.Resource{svc, res(config.KindEndpointSlice, slice, "default", slice.Name), res(config.KindPod, live, "default", live.Name)}

	goneMeta := &node.Meta{Type: node.Sidecar, IP: "10.0.0.9", Name: "reviews-gone", Namespace: "default", Labels: labels, NodeName: "weft-node"}
	gone := FromMeta(goneMeta)
	vm := FromMeta(&node.Meta{Type: node.Sidecar, IP: "10.9.0.1", Name: "vm-1", Namespace: "default", Labels: labels})

	for _, tc := range []struct {
		name string
		rs   []*config.Resource
		want map[string]bool // address -> healthy
	}{
		{"kubernetes, other pods known", kube, map[string]bool{"10.0.0.1": true, "10.0.0.9": false, "10.9.0.1": true}},
		// No Pod left at all (the last one deleted), a Node known.
		{"kubernetes, only a node", []*config.Resource{svc, res(config.KindNode, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "weft-node"}}, "", "weft-node")},
			map[string]bool{"10.0.0.9": false, "10.9.0.1": true}},
		{"directory", []*config.Resource{svc}, map[string]bool{"10.0.0.9": true, "10.9.0.1": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := Build(tc.rs, []*Workload{gone, vm})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, e := range find(t, snap, "reviews.default.svc.cluster.local").Endpoints {
				got[e.Address] = e.Healthy
			}
			if len(got) != len(tc.want) {
				t.Errorf("endpoints %v, want %v", got, tc.want)
			}
			for a, h := range tc.want {
				if g, ok := got[a]; !ok || g != h {
					t.Errorf("%s: healthy %v (listed %v), want healthy %v", a, g, ok, h)
				}
			}
			// Its proxy still gets the service's inbound config.
			if svcs := ServicesFor(snap, goneMeta); len(svcs) != 1 {
				t.Errorf("ServicesFor(gone pod's proxy) = %d services, want reviews", len(svcs))
			}
		})
	}

	// A registration saved across a control-plane restart keeps the fact;
	// a VM's saves as before (no NodeName field).
	for _, w := range []*Workload{gone, vm} {
		b, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		var back Workload
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.NodeName != w.NodeName || !sameWorkload(&back, w) {
			t.Errorf("%s: saved %s, read back NodeName %q", w.Name, b, back.NodeName)
		}
		if w.NodeName == "" && strings.Contains(string(b), "NodeName") {
			t.Errorf("%s: a VM's registration saves NodeName: %s", w.Name, b)
		}
	}
	// The proxy re-sending its node with another NodeName is a change.
	other := *gone
	other.NodeName = "other-node"
	if sameWorkload(gone, &other) {
		t.Error("sameWorkload ignores NodeName")
	}
}
