package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/node"
)

// On Kubernetes a pod serves when its EndpointSlice says it is ready: its
// proxy registering itself (up before the app listens) makes no healthy
// endpoint, a starting pod in the slices is an unhealthy endpoint (its
// proxy still gets the service's inbound config), and a proxy that is not
// in a pod (a VM) still registers healthy.
func TestPodProxiesDoNotMakeHealthyEndpoints(t *testing.T) {
	yes, no := true, false
	slice := reviewsSlice(9080,
		discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-old", Namespace: "default"}},
		// Starting: not ready, not serving, not terminating.
		discoveryv1.Endpoint{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &no, Serving: &no, Terminating: &no},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-new", Namespace: "default"}},
		// Gone: terminating and no longer serving.
		discoveryv1.Endpoint{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &no, Serving: &no, Terminating: &yes}},
	)
	labels := map[string]string{"app": "reviews"}
	pod := func(name, ip string) *config.Resource {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
			Status: corev1.PodStatus{PodIP: ip}}
		return res(config.KindPod, p, "default", name)
	}
	rs := []*config.Resource{
		kubeService("default", "reviews", labels, corev1.ServicePort{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}),
		res(config.KindEndpointSlice, slice, "default", slice.Name),
		pod("reviews-old", "10.0.0.1"), pod("reviews-new", "10.0.0.2"),
		// Not in the slices yet.
		pod("reviews-late", "10.0.0.4"), pod("reviews-byip", "10.0.0.5"),
	}
	proxy := func(name, ip string) *node.Meta {
		return &node.Meta{Type: node.Sidecar, IP: ip, Name: name, Namespace: "default", Labels: labels}
	}
	late := proxy("reviews-late", "10.0.0.4")
	ws := []*Workload{
		FromMeta(proxy("reviews-new", "10.0.0.2")),
		FromMeta(late),
		FromMeta(proxy("some-other-name", "10.0.0.5")), // a pod by its IP
		FromMeta(proxy("vm-1", "10.9.0.1")),            // no pod
	}
	snap, err := Build(rs, ws)
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, snap, "reviews.default.svc.cluster.local")
	want := map[string]bool{"10.0.0.1": true, "10.0.0.2": false, "10.0.0.4": false, "10.0.0.5": false, "10.9.0.1": true}
	got := map[string]bool{}
	for _, e := range s.Endpoints {
		if _, dup := got[e.Address]; dup {
			t.Errorf("%s listed twice", e.Address)
		}
		got[e.Address] = e.Healthy
	}
	if len(got) != len(want) {
		t.Errorf("endpoints %v, want %v", got, want)
	}
	for a, h := range want {
		if g, ok := got[a]; !ok || g != h {
			t.Errorf("%s: healthy %v (listed %v), want healthy %v", a, g, ok, h)
		}
	}
	// The starting pod's proxy still learns its services.
	if got := ServicesFor(snap, late); len(got) != 1 || got[0] != s {
		t.Errorf("ServicesFor(reviews-late) = %v, want reviews", got)
	}
	// Without Kubernetes Pods (the directory source) a proxy registers
	// healthy, as before.
	snap, err = Build(rs[:1], ws[1:2])
	if err != nil {
		t.Fatal(err)
	}
	if eps := find(t, snap, "reviews.default.svc.cluster.local").Endpoints; len(eps) != 1 || !eps[0].Healthy {
		t.Errorf("directory source: %+v, want one healthy endpoint", eps)
	}
}

// reviewsSlice is an EndpointSlice of the Service default/reviews whose
// port "http" is port.
func reviewsSlice(port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	name := "http"
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "reviews-abc", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints:   eps,
	}
}
