// Package config loads Istio configuration (multi-document YAML or JSON from
// files, directories and stdin) into the typed objects of istio.io/client-go,
// validates it the way Istio does, and runs cross-resource analyzers.
//
// The contract other packages rely on is Resource and Load*: every decoded
// object keeps where it came from, so any later error can name file:line.
package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Kind names a resource type. Several apiVersions map onto one Kind.
type Kind string

const (
	KindVirtualService        Kind = "VirtualService"
	KindDestinationRule       Kind = "DestinationRule"
	KindGateway               Kind = "Gateway"
	KindServiceEntry          Kind = "ServiceEntry"
	KindWorkloadEntry         Kind = "WorkloadEntry"
	KindWorkloadGroup         Kind = "WorkloadGroup"
	KindSidecar               Kind = "Sidecar"
	KindPeerAuthentication    Kind = "PeerAuthentication"
	KindRequestAuthentication Kind = "RequestAuthentication"
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"
	KindTelemetry             Kind = "Telemetry"
	KindService               Kind = "Service"    // Kubernetes v1 Service: a service definition in standalone mode
	KindMeshConfig            Kind = "MeshConfig" // mesh-wide settings (istio.io/api/mesh/v1alpha1)
	KindSecret                Kind = "Secret"     // Kubernetes v1 Secret: TLS material for gateway credentialName
	KindNamespace             Kind = "Namespace"  // Kubernetes v1 Namespace (cluster-scoped: Namespace is ""); analyzers use it
	// Kinds only the Kubernetes source produces (the loader skips them in
	// files): the registry takes endpoints from EndpointSlices and their Pods,
	// and a Pod's locality from its Node's topology labels.
	KindPod           Kind = "Pod"
	KindEndpointSlice Kind = "EndpointSlice"
	KindNode          Kind = "Node"
)

// Position is a place in a source file. Line and Column are 1-based; a zero
// Line means unknown.
type Position struct {
	File   string
	Line   int
	Column int
}

func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Key identifies a resource; two resources with one Key are a conflict.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Resource is one decoded document.
type Resource struct {
	Kind       Kind
	APIVersion string // as written, e.g. networking.istio.io/v1beta1
	Name       string
	Namespace  string

	// Object is the typed object: a *networkingv1.VirtualService (every
	// networking apiVersion is normalised to istio.io/client-go's v1 types,
	// the spec protos are the same), *securityv1.*, *telemetryv1.Telemetry,
	// *corev1.Service, *corev1.Secret, or *MeshConfig.
	Object runtime.Object
	// Spec is the object's spec message (nil for Service and Secret).
	Spec proto.Message
	// Meta is the object's metadata (labels, annotations …).
	Meta *metav1.ObjectMeta

	// Pos is where the document starts.
	Pos Position
	// Fields maps a field path ("spec.http[0].route[0].destination.host")
	// to where it was written, for error messages.
	Fields map[string]Position
}

// Key returns the resource's identity.
func (r *Resource) Key() Key { return Key{r.Kind, r.Namespace, r.Name} }

// PosOf returns the position of a field path, falling back to its nearest
// recorded parent and finally to the document start.
func (r *Resource) PosOf(path string) Position {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := r.Fields[p]; ok {
			return pos
		}
	}
	return r.Pos
}

func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}
