package config

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// kindInfo describes how to decode one Kind.
type kindInfo struct {
	kind     Kind
	group    string   // "" for the Kubernetes core group
	versions []string // accepted versions, newest first
	// newIstio builds an empty typed object and returns pointers to its
	// spec message and metadata. Nil for Kubernetes kinds.
	newIstio func() (runtime.Object, proto.Message, *metav1.ObjectMeta)
}

func (k *kindInfo) apiVersion() string {
	if k.group == "" {
		return k.versions[0]
	}
	return k.group + "/" + k.versions[0]
}

var networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}

// kinds lists the document types the loader understands.
var kinds = []*kindInfo{
	{kind: KindVirtualService, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.VirtualService{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindDestinationRule, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.DestinationRule{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindGateway, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.Gateway{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindServiceEntry, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.ServiceEntry{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindWorkloadEntry, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.WorkloadEntry{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindWorkloadGroup, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.WorkloadGroup{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindSidecar, group: "networking.istio.io", versions: networkingVersions,
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &networkingv1.Sidecar{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindPeerAuthentication, group: "security.istio.io", versions: []string{"v1", "v1beta1"},
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &securityv1.PeerAuthentication{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindRequestAuthentication, group: "security.istio.io", versions: []string{"v1", "v1beta1"},
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &securityv1.RequestAuthentication{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindAuthorizationPolicy, group: "security.istio.io", versions: []string{"v1", "v1beta1"},
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &securityv1.AuthorizationPolicy{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindTelemetry, group: "telemetry.istio.io", versions: []string{"v1", "v1alpha1"},
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &telemetryv1.Telemetry{}
			return o, &o.Spec, &o.ObjectMeta
		}},
	{kind: KindMeshConfig, group: "mesh.istio.io", versions: []string{"v1alpha1"},
		newIstio: func() (runtime.Object, proto.Message, *metav1.ObjectMeta) {
			o := &MeshConfig{}
			o.Spec = newMeshSpec()
			return o, o.Spec, &o.ObjectMeta
		}},
	{kind: KindService, versions: []string{"v1"}},
	{kind: KindSecret, versions: []string{"v1"}},
	{kind: KindNamespace, versions: []string{"v1"}},
}

// ignoredKinds are ordinary Kubernetes objects that often sit next to Istio
// config (Istio's own samples mix them in). Weft has no use for them, so the
// loader skips them instead of failing.
var ignoredKinds = map[string]bool{
	"v1/ServiceAccount": true, "v1/Pod": true,
	"apps/v1/Deployment": true, "apps/v1/StatefulSet": true, "apps/v1/DaemonSet": true,
	"apps/v1/ReplicaSet": true, "batch/v1/Job": true, "batch/v1/CronJob": true,
	"policy/v1/PodDisruptionBudget": true, "autoscaling/v2/HorizontalPodAutoscaler": true,
	"rbac.authorization.k8s.io/v1/Role": true, "rbac.authorization.k8s.io/v1/RoleBinding": true,
	"rbac.authorization.k8s.io/v1/ClusterRole": true, "rbac.authorization.k8s.io/v1/ClusterRoleBinding": true,
}

// lookupKind finds the kind for an apiVersion/kind pair. It returns nil
// when unknown; knownKind reports whether the kind exists under another
// apiVersion, to give a better message.
func lookupKind(apiVersion, kind string) (info *kindInfo, knownKind *kindInfo) {
	group, version := splitAPIVersion(apiVersion)
	for _, k := range kinds {
		if string(k.kind) != kind {
			continue
		}
		knownKind = k
		if k.group != group {
			continue
		}
		for _, v := range k.versions {
			if v == version {
				return k, k
			}
		}
	}
	return nil, knownKind
}

func splitAPIVersion(s string) (group, version string) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return "", s
}

// newService and newSecret are the Kubernetes kinds' constructors.
func newK8sObject(k Kind) (runtime.Object, *metav1.ObjectMeta) {
	switch k {
	case KindService:
		o := &corev1.Service{}
		return o, &o.ObjectMeta
	case KindSecret:
		o := &corev1.Secret{}
		return o, &o.ObjectMeta
	case KindNamespace:
		o := &corev1.Namespace{}
		return o, &o.ObjectMeta
	}
	return nil, nil
}

// istioGroup reports whether apiVersion belongs to Istio (*.istio.io) or
// the Kubernetes Gateway API, whose kinds Weft either implements or names
// as unsupported; anything else is another tool's and is skipped.
func istioGroup(apiVersion string) bool {
	group, _ := splitAPIVersion(apiVersion)
	return group == "istio.io" || strings.HasSuffix(group, ".istio.io") || gatewayAPIGroup(group)
}

func gatewayAPIGroup(group string) bool {
	return group == "gateway.networking.k8s.io" || group == "gateway.networking.x-k8s.io"
}

// unsupportedIstioKinds are Istio kinds (by group) that Weft does not
// implement yet.
var unsupportedIstioKinds = map[string][]string{
	"networking.istio.io": {"EnvoyFilter", "ProxyConfig"},
	"extensions.istio.io": {"WasmPlugin", "TrafficExtension"},
}

// unsupportedKind reports whether apiVersion/kind is Istio config (or a
// Gateway API kind) that Weft does not implement, and what to call it.
func unsupportedKind(apiVersion, kind string) (string, bool) {
	group, _ := splitAPIVersion(apiVersion)
	if gatewayAPIGroup(group) && kind != "" && kind[0] >= 'A' && kind[0] <= 'Z' {
		return "a Gateway API kind", true
	}
	for _, k := range unsupportedIstioKinds[group] {
		if k == kind {
			return "an Istio kind", true
		}
	}
	return "", false
}

// foreignDocument decides about a document by its apiVersion and kind
// fields before decoding: one with neither is not a Kubernetes object (a
// Helm values file, a docker-compose file): skipped with a file-level
// error, as istioctl analyze reports it. One with only one of them is
// skipped silently (a Helm Chart.yaml has apiVersion and no kind) unless
// what it has names Istio config, where a missing field is a mistake.
func foreignDocument(top map[string]*yaml.Node) (skip bool, err string) {
	a, k := top["apiVersion"], top["kind"]
	switch {
	case a == nil && k == nil:
		return true, "not a Kubernetes object (no apiVersion or kind); skipped"
	case k == nil:
		return !(a.Kind == yaml.ScalarNode && istioGroup(a.Value)), ""
	case a == nil:
		if k.Kind == yaml.ScalarNode {
			for _, info := range kinds {
				if string(info.kind) == k.Value {
					return false, ""
				}
			}
		}
		return true, ""
	}
	return false, ""
}
