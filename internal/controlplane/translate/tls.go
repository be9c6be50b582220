package translate

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

const (
	// SDS names of the workload certificate and the mesh root, as Istio.
	sdsDefault = "default"
	sdsRootCA  = "ROOTCA"
	// credentialPrefix is how Istio names credentialName secrets in SDS.
	credentialPrefix = "kubernetes://"
	// systemCAs is the trust store Istio uses for SIMPLE TLS without
	// caCertificates (VERIFY_CERTIFICATE_AT_CLIENT).
	systemCAs = "/etc/ssl/certs/ca-certificates.crt"
)

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)},
	}
}

// istioSNI is the SNI Istio sends for ISTIO_MUTUAL: outbound_.PORT_.SUBSET_.HOST.
func istioSNI(port uint32, subset, host string) string {
	return "outbound_." + itoa(port) + "_." + subset + "_." + host
}

// sanMatchers matches subject alt names: URI for SPIFFE ids, DNS otherwise.
func sanMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		t := tlsv3.SubjectAltNameMatcher_DNS
		if strings.HasPrefix(s, "spiffe://") {
			t = tlsv3.SubjectAltNameMatcher_URI
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: t,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return out
}

// istioSANs are the identities an ISTIO_MUTUAL upstream may present: the
// rule's subjectAltNames, else (as Istio) the SPIFFE ids of the service
// accounts behind the service's endpoints, sorted.
func (b *builder) istioSANs(svc *model.Service, explicit []string) []string {
	if len(explicit) > 0 {
		return explicit
	}
	td := b.mesh.GetTrustDomain()
	if td == "" {
		td = "cluster.local"
	}
	seen := map[string]bool{}
	for _, ep := range svc.Endpoints {
		if ep != nil && ep.ServiceAccount != "" {
			seen["spiffe://"+td+"/ns/"+ep.Namespace+"/sa/"+ep.ServiceAccount] = true
		}
	}
	return sortedKeys(seen)
}

// upstreamTLS builds a cluster's transport socket from DestinationRule tls.
// MESH_EXTERNAL services never get ISTIO_MUTUAL (they have no mesh identity).
func (b *builder) upstreamTLS(svc *model.Service, port *model.Port, subset string, t *networking.ClientTLSSettings) *corev3.TransportSocket {
	if t == nil {
		return nil
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}
	cc := ctx.CommonTlsContext
	switch t.Mode {
	case networking.ClientTLSSettings_DISABLE:
		return nil
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		if svc.MeshExternal {
			return nil
		}
		ctx.Sni = t.Sni
		if ctx.Sni == "" {
			ctx.Sni = istioSNI(port.Number, subset, svc.Hostname)
		}
		cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(sdsDefault)}
		cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(b.istioSANs(svc, t.SubjectAltNames))},
			ValidationContextSdsSecretConfig: sdsRef(sdsRootCA),
		}}
		cc.AlpnProtocols = []string{"istio-peer-exchange", "istio"}
		return tlsSocket(ctx)
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		ctx.Sni = t.Sni
		if ctx.Sni == "" && !strings.HasPrefix(svc.Hostname, "*") {
			// Istio's auto SNI: the destination host.
			ctx.Sni = svc.Hostname
		}
		if t.CredentialName != "" {
			name := credentialPrefix + t.CredentialName
			if t.Mode == networking.ClientTLSSettings_MUTUAL {
				cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(name)}
				if !b.addSecret(t.CredentialName, false) && b.noteCredential != nil {
					b.noteCredential(clusterName("outbound", port.Number, subset, svc.Hostname), t.CredentialName, false)
				}
			}
			if !t.GetInsecureSkipVerify().GetValue() {
				cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef(name + "-cacert")}
				if !b.addSecret(t.CredentialName, true) && b.noteCredential != nil {
					b.noteCredential(clusterName("outbound", port.Number, subset, svc.Hostname), t.CredentialName, true)
				}
			}
			return tlsSocket(ctx)
		}
		if t.Mode == networking.ClientTLSSettings_MUTUAL && t.ClientCertificate != "" {
			cc.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.ClientCertificate}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.PrivateKey}},
			}}
		}
		if !t.GetInsecureSkipVerify().GetValue() {
			ca := t.CaCertificates
			if ca == "" {
				ca = systemCAs
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa:                 &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: ca}},
				MatchTypedSubjectAltNames: sanMatchers(t.SubjectAltNames),
			}}
		}
		return tlsSocket(ctx)
	}
	return nil
}

// credentialNamespace is the namespace whose credentials the proxy may
// read: that of the identity it proved on its xDS connection. A proxy
// without one (the plaintext dev port) gets none, as in Istio: its node
// metadata is a claim, not a credential.
func (b *builder) credentialNamespace() (string, bool) {
	if b.p.Identity == nil || b.p.Identity.Namespace == "" {
		return "", false
	}
	return b.p.Identity.Namespace, true
}

// lookupSecret finds the credential (or, for ca, the secret holding its
// client CA: the credential's own ca.crt/cacert, else the separate
// NAME-cacert secret, as Istio) in the proxy's verified namespace. The
// namespace check is the lookup key itself, so a gateway can never read
// another namespace's secret (CVE-2021-34824).
func (b *builder) lookupSecret(credential string, ca bool) *model.Secret {
	ns, ok := b.credentialNamespace()
	if !ok {
		return nil
	}
	s := b.snap.Secrets[ns+"/"+credential]
	if s != nil && s.Namespace != ns {
		return nil
	}
	if !ca {
		if s == nil || len(s.CertChain) == 0 || len(s.PrivateKey) == 0 {
			return nil
		}
		return s
	}
	if s != nil && len(s.CACert) > 0 {
		return s
	}
	if s = b.snap.Secrets[ns+"/"+credential+"-cacert"]; s != nil && s.Namespace == ns && len(s.CACert) > 0 {
		return s
	}
	return nil
}

// hasSecret reports whether the proxy may be served the credential (or its
// CA part).
func (b *builder) hasSecret(credential string, ca bool) bool {
	return b.lookupSecret(credential, ca) != nil
}

// addSecret serves the credential (or its CA part) to the proxy when
// lookupSecret allows it, and reports whether it did.
func (b *builder) addSecret(credential string, ca bool) bool {
	s := b.lookupSecret(credential, ca)
	if s == nil {
		return false
	}
	if ca {
		name := credentialPrefix + credential + "-cacert"
		b.secrets[name] = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.CACert}},
		}}}
		return true
	}
	name := credentialPrefix + credential
	b.secrets[name] = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.CertChain}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.PrivateKey}},
	}}}
	return true
}

// downstreamTLS is a gateway server's TLS termination (SIMPLE, MUTUAL,
// OPTIONAL_MUTUAL, ISTIO_MUTUAL).
func (b *builder) downstreamTLS(t *networking.ServerTLSSettings, alpn []string) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: alpn}}
	cc := ctx.CommonTlsContext
	switch t.GetMode() {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(sdsDefault)}
		cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef(sdsRootCA)}
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
		return tlsSocket(ctx)
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
	default:
		return nil
	}
	mutual := t.GetMode() != networking.ServerTLSSettings_SIMPLE
	switch {
	case t.CredentialName != "":
		name := credentialPrefix + t.CredentialName
		cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(name)}
		b.addSecret(t.CredentialName, false)
		if mutual {
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef(name + "-cacert")}
			b.addSecret(t.CredentialName, true)
		}
	case t.ServerCertificate != "":
		cc.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.ServerCertificate}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.PrivateKey}},
		}}
		if mutual && t.CaCertificates != "" {
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa:                 &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.CaCertificates}},
				MatchTypedSubjectAltNames: sanMatchers(t.SubjectAltNames),
			}}
		}
	}
	if t.GetMode() == networking.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
	}
	cc.TlsParams = serverTLSParams(t)
	return tlsSocket(ctx)
}

// serverTLSParams carries minProtocolVersion/maxProtocolVersion and
// cipherSuites (Envoy's OpenSSL names). Without
// them Istio's gateways accept TLS 1.2 and 1.3 only; so does weft-proxy
// (its default minimum is 1.2), so nothing is emitted then.
func serverTLSParams(t *networking.ServerTLSSettings) *tlsv3.TlsParameters {
	v := func(p networking.ServerTLSSettings_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
		switch p {
		case networking.ServerTLSSettings_TLSV1_0:
			return tlsv3.TlsParameters_TLSv1_0
		case networking.ServerTLSSettings_TLSV1_1:
			return tlsv3.TlsParameters_TLSv1_1
		case networking.ServerTLSSettings_TLSV1_2:
			return tlsv3.TlsParameters_TLSv1_2
		case networking.ServerTLSSettings_TLSV1_3:
			return tlsv3.TlsParameters_TLSv1_3
		}
		return tlsv3.TlsParameters_TLS_AUTO
	}
	minV, maxV := v(t.GetMinProtocolVersion()), v(t.GetMaxProtocolVersion())
	if minV == tlsv3.TlsParameters_TLS_AUTO && maxV == tlsv3.TlsParameters_TLS_AUTO && len(t.GetCipherSuites()) == 0 {
		return nil
	}
	return &tlsv3.TlsParameters{TlsMinimumProtocolVersion: minV, TlsMaximumProtocolVersion: maxV, CipherSuites: t.GetCipherSuites()}
}
