package config

import (
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MeshConfig wraps Istio's MeshConfig as a document of its own:
//
//	apiVersion: mesh.istio.io/v1alpha1   (Weft's spelling; Istio keeps it in a ConfigMap)
//	kind: MeshConfig
//	metadata: {name: mesh}
//	spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}, accessLogFile: /dev/stdout}
//
// Istio's own form, a ConfigMap named "istio" whose data.mesh holds the
// MeshConfig YAML, is accepted by the loader too.
type MeshConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              *meshv1alpha1.MeshConfig `json:"spec,omitempty"`
}

// DeepCopyObject implements runtime.Object.
func (m *MeshConfig) DeepCopyObject() runtime.Object {
	out := &MeshConfig{TypeMeta: m.TypeMeta}
	m.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if m.Spec != nil {
		out.Spec = protoClone(m.Spec).(*meshv1alpha1.MeshConfig)
	}
	return out
}
