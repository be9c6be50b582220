package kube

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/internal/config"
)

// resourceOf wraps an informer object as the config.Resource the
// directory store would have produced for the same YAML. The object is
// shared with the informer cache and never modified. validate says whether
// config.Validate applies (Istio kinds and Services: what Istio's webhook
// would check).
func resourceOf(obj any) (r *config.Resource, validate bool) {
	mk := func(kind config.Kind, apiVersion string, o runtime.Object, spec proto.Message, meta *metav1.ObjectMeta) *config.Resource {
		return &config.Resource{
			Kind: kind, APIVersion: apiVersion, Name: meta.Name, Namespace: meta.Namespace,
			Object: o, Spec: spec, Meta: meta,
			Pos:    config.Position{File: fmt.Sprintf("%s %s/%s", kind, meta.Namespace, meta.Name)},
			Fields: map[string]config.Position{},
		}
	}
	const net, sec, tel = "networking.istio.io/v1", "security.istio.io/v1", "telemetry.istio.io/v1"
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		return mk(config.KindVirtualService, net, o, &o.Spec, &o.ObjectMeta), true
	case *networkingv1.DestinationRule:
		return mk(config.KindDestinationRule, net, o, &o.Spec, &o.ObjectMeta), true
	case *networkingv1.Gateway:
		return mk(config.KindGateway, net, o, &o.Spec, &o.ObjectMeta), true
	case *networkingv1.ServiceEntry:
		return mk(config.KindServiceEntry, net, o, &o.Spec, &o.ObjectMeta), true
	case *networkingv1.WorkloadEntry:
		return mk(config.KindWorkloadEntry, net, o, &o.Spec, &o.ObjectMeta), true
	case *networkingv1.WorkloadGroup:
		return mk(config.KindWorkloadGroup, net, o, &o.Spec, &o.ObjectMeta), true
	case *networkingv1.Sidecar:
		return mk(config.KindSidecar, net, o, &o.Spec, &o.ObjectMeta), true
	case *securityv1.PeerAuthentication:
		return mk(config.KindPeerAuthentication, sec, o, &o.Spec, &o.ObjectMeta), true
	case *securityv1.RequestAuthentication:
		return mk(config.KindRequestAuthentication, sec, o, &o.Spec, &o.ObjectMeta), true
	case *securityv1.AuthorizationPolicy:
		return mk(config.KindAuthorizationPolicy, sec, o, &o.Spec, &o.ObjectMeta), true
	case *telemetryv1.Telemetry:
		return mk(config.KindTelemetry, tel, o, &o.Spec, &o.ObjectMeta), true
	case *corev1.Service:
		return mk(config.KindService, "v1", o, nil, &o.ObjectMeta), true
	case *corev1.Secret:
		return mk(config.KindSecret, "v1", o, nil, &o.ObjectMeta), false
	case *corev1.Namespace:
		return mk(config.KindNamespace, "v1", o, nil, &o.ObjectMeta), false
	case *corev1.Pod:
		return mk(config.KindPod, "v1", o, nil, &o.ObjectMeta), false
	case *corev1.Node:
		return mk(config.KindNode, "v1", o, nil, &o.ObjectMeta), false
	case *discoveryv1.EndpointSlice:
		return mk(config.KindEndpointSlice, "discovery.k8s.io/v1", o, nil, &o.ObjectMeta), false
	}
	return nil, false
}

// meshConfigOf reads Istio's "istio" ConfigMap with the directory loader,
// so defaults and strict field checks are the same in both modes.
func meshConfigOf(cm *corev1.ConfigMap) (*config.Resource, error) {
	c := cm.DeepCopy()
	c.APIVersion, c.Kind = "v1", "ConfigMap"
	c.ManagedFields = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	rs, err := config.LoadReader(fmt.Sprintf("ConfigMap %s/%s", cm.Namespace, cm.Name), bytes.NewReader(b), config.Options{})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Kind == config.KindMeshConfig {
			return r, nil
		}
	}
	return nil, nil // no data.mesh: Istio's defaults
}

// trimNode keeps a Node's name and labels (its topology), all the
// registry reads; a Node's status (images, conditions) is large and
// changes every few seconds, so updates that leave the labels alone are
// dropped by the handler.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels,
	}}, nil
}

// trimPod keeps what the registry reads of a Pod (labels, service account,
// node, IPs, readiness), so the cache of a large cluster stays small.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName, NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{
			Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs,
		},
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out, nil
}
