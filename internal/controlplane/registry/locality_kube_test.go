package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

func TestPodLocality(t *testing.T) {
	ki := &kubeIndex{}
	ki.add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ga", Labels: map[string]string{
		corev1.LabelTopologyRegion: "r1", corev1.LabelTopologyZone: "z1", "topology.istio.io/subzone": "s1",
		corev1.LabelFailureDomainBetaRegion: "old", corev1.LabelFailureDomainBetaZone: "old"}}})
	ki.add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "beta", Labels: map[string]string{
		corev1.LabelFailureDomainBetaRegion: "r2", corev1.LabelFailureDomainBetaZone: "z2"}}})
	ki.add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}})
	pod := func(node string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{NodeName: node}}
	}
	for _, tc := range []struct {
		name, want string
		pod        *corev1.Pod
	}{
		{"GA labels win over beta", "r1/z1/s1", pod("ga", nil)},
		{"beta labels", "r2/z2/", pod("beta", nil)},
		{"node without topology: fallback", "/zf", pod("bare", nil)},
		{"unknown node: fallback", "/zf", pod("gone", nil)},
		{"pod's topology.istio.io/locality first", "a/b/c", pod("ga", map[string]string{"topology.istio.io/locality": "a.b.c", "istio-locality": "x.y"})},
		{"pod's istio-locality", "x/y", pod("ga", map[string]string{"istio-locality": "x.y"})},
		// Istio reads only the locality labels on the pod, not its own
		// region/zone labels.
		{"pod's own region label ignored", "r1/z1/s1", pod("ga", map[string]string{corev1.LabelTopologyRegion: "p"})},
	} {
		if got := ki.podLocality(tc.pod, "/zf"); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWithLocality(t *testing.T) {
	svcs := []*model.Service{{Endpoints: []*model.Endpoint{
		{Address: "10.0.0.1", Namespace: "ns", WorkloadName: "other", Locality: "x/x/x"},
		{Address: "10.0.0.1", Namespace: "ns", WorkloadName: "a", Locality: "r1/z1/s1"},
	}}}
	m := &node.Meta{IP: "10.0.0.1", Namespace: "ns", Name: "a", Locality: "announced/z"}
	if got := WithLocality(m, svcs); got.Locality != "r1/z1/s1" || m.Locality != "announced/z" {
		t.Errorf("got %q (meta now %q), want the registry's r1/z1/s1 and meta untouched", got.Locality, m.Locality)
	}
	other := &node.Meta{IP: "10.0.0.2", Namespace: "ns", Name: "b", Locality: "announced/z"}
	if got := WithLocality(other, svcs); got != other {
		t.Errorf("a proxy without an endpoint changed: %+v", got)
	}
}
