package config

import (
	"crypto/tls"
	"crypto/x509"
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
// Secret holds tls.crt and tls.key; where a certificate and key are given
// (tls.crt/tls.key, or a generic Secret's cert/key) they must form a pair,
// and a client CA (ca.crt, cacert) must hold PEM certificates. A broken
// credential is refused here, so the last good one keeps serving instead
// of gateways being sent material they cannot load.
func (v *validator) secret(s *corev1.Secret) {
	get := func(k string) ([]byte, bool) {
		if b, ok := s.Data[k]; ok {
			return b, true
		}
		str, ok := s.StringData[k]
		return []byte(str), ok
	}
	if s.Type == corev1.SecretTypeTLS {
		for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if _, ok := get(k); !ok {
				v.errorf("data", "kubernetes.io/tls secret needs data[%s]", k)
			}
		}
	}
	if s.Type != corev1.SecretTypeTLS && s.Type != corev1.SecretTypeOpaque && s.Type != "" {
		return
	}
	for _, pair := range [][2]string{{corev1.TLSCertKey, corev1.TLSPrivateKeyKey}, {"cert", "key"}} {
		c, okc := get(pair[0])
		k, okk := get(pair[1])
		if okc && okk && len(c) > 0 && len(k) > 0 {
			if _, err := tls.X509KeyPair(c, k); err != nil {
				v.errorf("data["+pair[0]+"]", "certificate and data[%s] do not form a TLS key pair: %v", pair[1], err)
			}
		}
	}
	for _, k := range []string{"ca.crt", "cacert"} {
		if b, ok := get(k); ok && len(b) > 0 && !x509.NewCertPool().AppendCertsFromPEM(b) {
			v.errorf("data["+k+"]", "no PEM certificate")
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
