package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// ServerTLS builds the server side of a DownstreamTlsContext. Certificates
// and validation contexts may be inline or SDS references resolved with
// secret; a missing secret is an error (the config is not complete).
func ServerTLS(d *tlsv3.DownstreamTlsContext, secret func(string) *tlsv3.Secret) (*tls.Config, error) {
	if err := AllowOnly(d, "DownstreamTlsContext", "common_tls_context", "require_client_certificate"); err != nil {
		return nil, err
	}
	ctc := d.GetCommonTlsContext()
	if err := AllowOnly(ctc, "common_tls_context", "tls_certificates", "tls_certificate_sds_secret_configs",
		"validation_context", "validation_context_sds_secret_config", "combined_validation_context",
		"alpn_protocols", "tls_params"); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: ctc.GetAlpnProtocols()}
	if p := ctc.GetTlsParams(); p != nil {
		if err := AllowOnly(p, "common_tls_context.tls_params", "tls_minimum_protocol_version", "tls_maximum_protocol_version"); err != nil {
			return nil, err
		}
		cfg.MinVersion = tlsVersion(p.GetTlsMinimumProtocolVersion(), tls.VersionTLS12)
		cfg.MaxVersion = tlsVersion(p.GetTlsMaximumProtocolVersion(), 0)
	}
	certs := append([]*tlsv3.TlsCertificate(nil), ctc.GetTlsCertificates()...)
	for _, s := range ctc.GetTlsCertificateSdsSecretConfigs() {
		sec := secret(s.GetName())
		if sec == nil || sec.GetTlsCertificate() == nil {
			return nil, fmt.Errorf("tls_certificate_sds_secret_configs: secret %q not available", s.GetName())
		}
		certs = append(certs, sec.GetTlsCertificate())
	}
	if len(certs) == 0 {
		return nil, errors.New("common_tls_context: no certificate")
	}
	for i, tc := range certs {
		if err := AllowOnly(tc, fmt.Sprintf("tls_certificates[%d]", i), "certificate_chain", "private_key"); err != nil {
			return nil, err
		}
		chain, err := dataSource(tc.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d].certificate_chain: %w", i, err)
		}
		key, err := dataSource(tc.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d].private_key: %w", i, err)
		}
		pair, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d]: %w", i, err)
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	vc := ctc.GetValidationContext()
	if cvc := ctc.GetCombinedValidationContext(); cvc != nil {
		if err := AllowOnly(cvc, "combined_validation_context", "default_validation_context", "validation_context_sds_secret_config"); err != nil {
			return nil, err
		}
		vc = mergeValidation(cvc.GetDefaultValidationContext(), sdsValidation(cvc.GetValidationContextSdsSecretConfig(), secret))
		if cvc.GetValidationContextSdsSecretConfig() != nil && sdsValidation(cvc.GetValidationContextSdsSecretConfig(), secret) == nil {
			return nil, fmt.Errorf("combined_validation_context: secret %q not available", cvc.GetValidationContextSdsSecretConfig().GetName())
		}
	}
	if s := ctc.GetValidationContextSdsSecretConfig(); s != nil {
		vc = sdsValidation(s, secret)
		if vc == nil {
			return nil, fmt.Errorf("validation_context_sds_secret_config: secret %q not available", s.GetName())
		}
	}
	if vc != nil {
		if err := AllowOnly(vc, "validation_context", "trusted_ca", "match_typed_subject_alt_names"); err != nil {
			return nil, err
		}
		if vc.GetTrustedCa() != nil {
			pem, err := dataSource(vc.GetTrustedCa())
			if err != nil {
				return nil, fmt.Errorf("validation_context.trusted_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("validation_context.trusted_ca: no PEM certificates")
			}
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
			if d.GetRequireClientCertificate().GetValue() {
				cfg.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}
		if sans := vc.GetMatchTypedSubjectAltNames(); len(sans) > 0 {
			check, err := sanChecker(sans)
			if err != nil {
				return nil, fmt.Errorf("validation_context.match_typed_subject_alt_names: %w", err)
			}
			cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
				if len(chains) == 0 || len(chains[0]) == 0 {
					return nil // no client certificate; ClientAuth decides
				}
				return check(chains[0][0])
			}
		}
	} else if d.GetRequireClientCertificate().GetValue() {
		return nil, errors.New("require_client_certificate without a validation context")
	}
	tolerateALPN(cfg)
	return cfg, nil
}

// tolerateALPN gives Envoy's server-side ALPN semantics: a client whose
// offer shares nothing with alpn_protocols completes the handshake without
// ALPN, where Go would abort it (no_application_protocol). Istio relies on
// this: mesh clients offer istio-http/1.1 to inbound chains that list
// istio-peer-exchange, h2 and http/1.1.
func tolerateALPN(cfg *tls.Config) {
	if len(cfg.NextProtos) == 0 {
		return
	}
	none := cfg.Clone()
	none.NextProtos = nil
	protos := cfg.NextProtos
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		for _, c := range h.SupportedProtos {
			for _, s := range protos {
				if c == s || (s == "h2" && c == "http/1.1") {
					return nil, nil // Go negotiates (or falls back) itself
				}
			}
		}
		if len(h.SupportedProtos) == 0 {
			return nil, nil
		}
		return none, nil
	}
}

func sdsValidation(s *tlsv3.SdsSecretConfig, secret func(string) *tlsv3.Secret) *tlsv3.CertificateValidationContext {
	if s == nil {
		return nil
	}
	return secret(s.GetName()).GetValidationContext()
}

// mergeValidation: the SDS context provides the CA, the default context
// adds SAN matchers (Envoy merges them the same way).
func mergeValidation(def, sds *tlsv3.CertificateValidationContext) *tlsv3.CertificateValidationContext {
	out := &tlsv3.CertificateValidationContext{}
	if sds != nil {
		out.TrustedCa = sds.GetTrustedCa()
		out.MatchTypedSubjectAltNames = sds.GetMatchTypedSubjectAltNames()
	}
	if def != nil {
		if def.GetTrustedCa() != nil {
			out.TrustedCa = def.GetTrustedCa()
		}
		out.MatchTypedSubjectAltNames = append(out.MatchTypedSubjectAltNames, def.GetMatchTypedSubjectAltNames()...)
	}
	return out
}

func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, def uint16) uint16 {
	switch v {
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13
	}
	return def
}

func dataSource(d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		return os.ReadFile(s.Filename)
	}
	return nil, errors.New("empty data source")
}

// sanChecker accepts a certificate when any SAN matcher matches a SAN of
// its type (Envoy: match_typed_subject_alt_names is an OR).
func sanChecker(ms []*tlsv3.SubjectAltNameMatcher) (func(*x509.Certificate) error, error) {
	type one struct {
		typ   tlsv3.SubjectAltNameMatcher_SanType
		match func(string) bool
	}
	var all []one
	for i, m := range ms {
		f, err := StringMatcher(m.GetMatcher())
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_URI, tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		default:
			return nil, fmt.Errorf("[%d]: san_type %v not supported", i, m.GetSanType())
		}
		all = append(all, one{m.GetSanType(), f})
	}
	return func(c *x509.Certificate) error {
		var seen []string
		for _, o := range all {
			var vals []string
			switch o.typ {
			case tlsv3.SubjectAltNameMatcher_URI:
				for _, u := range c.URIs {
					vals = append(vals, u.String())
				}
			case tlsv3.SubjectAltNameMatcher_DNS:
				vals = c.DNSNames
			case tlsv3.SubjectAltNameMatcher_EMAIL:
				vals = c.EmailAddresses
			case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
				for _, ip := range c.IPAddresses {
					vals = append(vals, ip.String())
				}
			}
			for _, v := range vals {
				if o.match(v) {
					return nil
				}
			}
			seen = append(seen, vals...)
		}
		return fmt.Errorf("peer certificate SANs %v match no allowed subject alt name", seen)
	}, nil
}

// StringMatcher compiles an Envoy StringMatcher.
func StringMatcher(m *matcherv3.StringMatcher) (func(string) bool, error) {
	if err := AllowOnly(m, "string_matcher", "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return nil, err
	}
	fold := m.GetIgnoreCase()
	norm := func(s string) string {
		if fold {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		want := norm(p.Exact)
		return func(s string) bool { return norm(s) == want }, nil
	case *matcherv3.StringMatcher_Prefix:
		want := norm(p.Prefix)
		return func(s string) bool { return strings.HasPrefix(norm(s), want) }, nil
	case *matcherv3.StringMatcher_Suffix:
		want := norm(p.Suffix)
		return func(s string) bool { return strings.HasSuffix(norm(s), want) }, nil
	case *matcherv3.StringMatcher_Contains:
		want := norm(p.Contains)
		return func(s string) bool { return strings.Contains(norm(s), want) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		return re.MatchString, nil
	}
	return nil, errors.New("string matcher without a pattern")
}
