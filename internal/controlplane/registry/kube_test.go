package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/config"
)

func TestBuildEndpointsFromEndpointSlices(t *testing.T) {
	yes, no := true, false
	slice := reviewsSlice(9081,
		discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-1", Namespace: "default"}},
		// Not ready but serving: sent, unhealthy.
		discoveryv1.Endpoint{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &no, Serving: &yes}},
		// Terminating and not serving: left out.
		discoveryv1.Endpoint{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &no, Serving: &no, Terminating: &yes}},
	)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-1", Namespace: "default",
			Labels: map[string]string{"app": "reviews", "version": "v1", "security.istio.io/tlsMode": "istio"}},
		Spec: corev1.PodSpec{ServiceAccountName: "bookinfo-reviews"},
	}
	rs := []*config.Resource{
		kubeService("default", "reviews", map[string]string{"app": "reviews"},
			corev1.ServicePort{Name: "http", Port: 9080, TargetPort: intstr.FromString("web")}),
		res(config.KindEndpointSlice, slice, "default", slice.Name),
		res(config.KindPod, pod, "default", pod.Name),
		// A WorkloadEntry for the same address is not doubled; another one adds.
		workloadEntry("default", "dup", "10.0.0.1", map[string]string{"app": "reviews"}, nil, ""),
		workloadEntry("default", "vm", "10.9.0.1", map[string]string{"app": "reviews"}, nil, "vm"),
	}
	snap, err := Build(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, snap, "reviews.default.svc.cluster.local")
	if len(s.Endpoints) != 3 {
		t.Fatalf("endpoints: got %d, want 3: %+v", len(s.Endpoints), s.Endpoints)
	}
	e := s.Endpoints[0]
	if e.Address != "10.0.0.1" || e.Port != 9081 || e.ServicePort != 9080 || !e.Healthy ||
		e.ServiceAccount != "bookinfo-reviews" || e.TLSMode != "istio" || e.Labels["version"] != "v1" || e.WorkloadName != "reviews-1" {
		t.Errorf("pod endpoint: %+v", e)
	}
	if e := s.Endpoints[1]; e.Address != "10.0.0.2" || e.Healthy || e.TLSMode != "disabled" {
		t.Errorf("unready endpoint: %+v", e)
	}
	if e := s.Endpoints[2]; e.Address != "10.9.0.1" || e.WorkloadName != "vm" {
		t.Errorf("workload entry endpoint: %+v", e)
	}
}
