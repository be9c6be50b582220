package config

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
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

// DefaultMeshConfig returns the mesh settings that apply when a field is not
// written, following Istio's defaults (pkg/config/mesh): traffic to unknown
// hosts is allowed, auto mTLS is on, the trust domain is cluster.local.
// A loaded MeshConfig document is merged onto these: fields it sets replace
// the default, lists replace whole.
func DefaultMeshConfig() *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{
		ConnectTimeout:        durationpb.New(10 * time.Second),
		IngressClass:          "istio",
		IngressService:        "istio-ingressgateway",
		IngressControllerMode: meshv1alpha1.MeshConfig_STRICT,
		EnableTracing:         true,
		OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{
			Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY,
		},
		EnableAutoMtls:                 wrapperspb.Bool(true),
		TrustDomain:                    "cluster.local",
		DefaultServiceExportTo:         []string{"*"},
		DefaultVirtualServiceExportTo:  []string{"*"},
		DefaultDestinationRuleExportTo: []string{"*"},
		RootNamespace:                  "istio-system",
		DnsRefreshRate:                 durationpb.New(60 * time.Second),
		EnablePrometheusMerge:          wrapperspb.Bool(true),
		// Istio's default: locality load balancing on (failover needs
		// outlier detection in a DestinationRule to take effect).
		LocalityLbSetting: &networking.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(true)},
		DefaultConfig: &meshv1alpha1.ProxyConfig{
			DrainDuration:            durationpb.New(45 * time.Second),
			TerminationDrainDuration: durationpb.New(5 * time.Second),
			DiscoveryAddress:         "istiod.istio-system.svc:15012",
			ProxyAdminPort:           15000,
			StatusPort:               15020,
			StatNameLength:           189,
			ControlPlaneAuthPolicy:   meshv1alpha1.AuthenticationPolicy_MUTUAL_TLS,
		},
	}
}

func newMeshSpec() *meshv1alpha1.MeshConfig { return DefaultMeshConfig() }
