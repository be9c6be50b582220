package kube_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// TestLocalityFromNodes: an endpoint's locality is its Pod's Node's
// topology labels (region, zone, subzone), unless the Pod has its own
// locality label, as in Istio's getPodLocality; a Node label edit moves
// the endpoint; without Pod or Node the slice's zone is kept.
func TestLocalityFromNodes(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	kc := env.Client

	nodeName := "node-" + ns
	nd, err := kc.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{
		corev1.LabelTopologyRegion: "r1", corev1.LabelTopologyZone: "z1", node.LabelSubzone: "s1"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{}) })
	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// on-node takes the Node's; own-label overrides it with its own.
	for name, labels := range map[string]map[string]string{
		"on-node":   {"app": "reviews"},
		"own-label": {"app": "reviews", node.LabelLegacyLocality: "r9.z9"},
	} {
		if _, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "app", Image: "reviews"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	name, port, yes, zone := "http", int32(9080), true, "zc"
	ref := func(pod string) *corev1.ObjectReference {
		return &corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: ns}
	}
	if _, err := kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "reviews-1", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.3.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}, TargetRef: ref("on-node"), NodeName: &nodeName},
			{Addresses: []string{"10.3.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}, TargetRef: ref("own-label"), NodeName: &nodeName},
			{Addresses: []string{"10.3.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}, Zone: &zone},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	s := controlPlane(t, env)
	c, err := meshtest.DialXDS(s.XDSAddr(), &node.Meta{Type: node.Sidecar, IP: "10.3.0.9", Name: "productpage", Namespace: ns}, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cluster := "outbound|9080||reviews." + ns + ".svc.cluster.local"
	localities := func(c *meshtest.XDSClient) map[string]string {
		cla, _ := c.Resources(resource.EndpointType)[cluster].(*endpointv3.ClusterLoadAssignment)
		out := map[string]string{}
		for _, l := range cla.GetEndpoints() {
			loc := l.GetLocality()
			for _, e := range l.GetLbEndpoints() {
				out[e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = fmt.Sprintf("%s/%s/%s", loc.GetRegion(), loc.GetZone(), loc.GetSubZone())
			}
		}
		return out
	}
	want := map[string]string{"10.3.0.1": "r1/z1/s1", "10.3.0.2": "r9/z9/", "10.3.0.3": "/zc/"}
	waitFor(t, c, fmt.Sprintf("localities %v", want), func(c *meshtest.XDSClient) bool { return maps.Equal(localities(c), want) })

	nd.Labels[corev1.LabelTopologyZone] = "z2"
	if _, err := kc.CoreV1().Nodes().Update(ctx, nd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want["10.3.0.1"] = "r1/z2/s1"
	took := waitFor(t, c, "the Node's new zone", func(c *meshtest.XDSClient) bool { return maps.Equal(localities(c), want) })
	t.Logf("Node label edit reached EDS in %v", took)
	if got := localities(c); !maps.Equal(got, want) {
		t.Errorf("localities %v, want %v", got, want)
	}
}
