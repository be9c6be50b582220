package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func init() {
	objectValidators[KindService] = func(v *validator, r *Resource) { v.service(r.Object.(*corev1.Service)) }
	objectValidators[KindSecret] = func(v *validator, r *Resource) { v.secret(r.Object.(*corev1.Secret)) }
	specValidators[KindMeshConfig] = func(v *validator, m proto.Message) { v.meshConfig(m.(*meshv1alpha1.MeshConfig)) }
}

// service applies the Kubernetes rules Weft depends on: ports exist, are
// in range, are named uniquely (when several), and target valid ports.
func (v *validator) service(s *corev1.Service) {
	if s.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != corev1.ClusterIPNone && len(s.Spec.Ports) == 0 {
		v.errorf("spec.ports", "service must have at least one port")
	}
	names := map[string]bool{}
	seen := map[string]bool{}
	for i, sp := range s.Spec.Ports {
		p := fmt.Sprintf("spec.ports[%d]", i)
		v.port(p+".port", int64(sp.Port))
		switch {
		case sp.Name == "" && len(s.Spec.Ports) > 1:
			v.errorf(p+".name", "port name is required when a service has more than one port")
		case sp.Name != "" && !isDNSLabel(sp.Name):
			v.errorf(p+".name", "invalid port name %q: must be a lower-case RFC 1123 label", sp.Name)
		case sp.Name != "" && names[sp.Name]:
			v.errorf(p+".name", "duplicate port name %q", sp.Name)
		}
		names[sp.Name] = true
		switch sp.Protocol {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			v.errorf(p+".protocol", "unsupported protocol %q (TCP, UDP or SCTP)", sp.Protocol)
		}
		key := fmt.Sprintf("%d/%s", sp.Port, sp.Protocol)
		if seen[key] {
			v.errorf(p+".port", "duplicate port %d", sp.Port)
		}
		seen[key] = true
		switch sp.TargetPort.Type {
		case intstr.Int:
			if sp.TargetPort.IntVal != 0 {
				v.port(p+".targetPort", int64(sp.TargetPort.IntVal))
			}
		case intstr.String:
			if n := sp.TargetPort.StrVal; len(n) > 15 || !isDNSLabel(n) {
				v.errorf(p+".targetPort", "invalid targetPort %q: a port number or an IANA service name", n)
			}
		}
	}
	v.labels("spec.selector", s.Spec.Selector)
	v.labels("metadata.labels", s.Labels)
}

// secret checks what gateway credentialName needs: a kubernetes.io/tls
// Secret holds tls.crt and tls.key.
func (v *validator) secret(s *corev1.Secret) {
	if s.Type != corev1.SecretTypeTLS {
		return
	}
	has := func(k string) bool {
		if _, ok := s.Data[k]; ok {
			return true
		}
		_, ok := s.StringData[k]
		return ok
	}
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if !has(k) {
			v.errorf("data", "kubernetes.io/tls secret needs data[%s]", k)
		}
	}
}

func (v *validator) meshConfig(m *meshv1alpha1.MeshConfig) {
	p := "spec"
	if v.r.APIVersion == "v1" {
		p = "data.mesh" // Istio's ConfigMap form
	}
	if m.TrustDomain != "" && checkFQDN(m.TrustDomain) != "" && !isDNSLabel(m.TrustDomain) {
		v.errorf(p+".trustDomain", "invalid trust domain %q", m.TrustDomain)
	}
	if m.ConnectTimeout != nil {
		v.duration(p+".connectTimeout", m.ConnectTimeout)
	}
	if m.ProxyListenPort != 0 {
		v.port(p+".proxyListenPort", int64(m.ProxyListenPort))
	}
	if m.DefaultConfig != nil && m.DefaultConfig.ProxyAdminPort != 0 {
		v.port(p+".defaultConfig.proxyAdminPort", int64(m.DefaultConfig.ProxyAdminPort))
	}
	v.localityLB(p+".localityLbSetting", m.LocalityLbSetting, &networking.OutlierDetection{}) // Istio: no failover warning for the mesh default
	for i, e := range m.ExtensionProviders {
		if e.Name == "" {
			v.errorf(fmt.Sprintf("%s.extensionProviders[%d].name", p, i), "extension provider name must not be empty")
		}
	}
}
