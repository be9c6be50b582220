package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// ServerTLS builds the server side of a DownstreamTlsContext. Certificates
// and validation contexts may be inline or SDS references resolved with
// secret; a missing secret is an error (the config is not complete).
func ServerTLS(d *tlsv3.DownstreamTlsContext, secret func(string) *tlsv3.Secret) (*tls.Config, error) {
	if err := xdsfield.Check(d, "DownstreamTlsContext", "common_tls_context", "require_client_certificate"); err != nil {
		return nil, err
	}
	ctc := d.GetCommonTlsContext()
	if err := xdsfield.Check(ctc, "common_tls_context", "tls_certificates", "tls_certificate_sds_secret_configs",
		"validation_context", "validation_context_sds_secret_config", "combined_validation_context",
		"alpn_protocols", "tls_params"); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: ctc.GetAlpnProtocols()}
	if p := ctc.GetTlsParams(); p != nil {
		if err := xdsfield.Check(p, "common_tls_context.tls_params", "tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites"); err != nil {
			return nil, err
		}
		cfg.MinVersion = meshtls.TLSVersion(p.GetTlsMinimumProtocolVersion(), tls.VersionTLS12)
		cfg.MaxVersion = meshtls.TLSVersion(p.GetTlsMaximumProtocolVersion(), 0)
		if cs := p.GetCipherSuites(); len(cs) > 0 {
			ids, err := meshtls.CipherSuites(cs)
			if err != nil {
				return nil, fmt.Errorf("common_tls_context.tls_params.cipher_suites: %w", err)
			}
			cfg.CipherSuites = ids
		}
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
		if err := xdsfield.Check(tc, fmt.Sprintf("tls_certificates[%d]", i), "certificate_chain", "private_key"); err != nil {
			return nil, err
		}
		chain, err := meshtls.DataSource(tc.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d].certificate_chain: %w", i, err)
		}
		key, err := meshtls.DataSource(tc.GetPrivateKey())
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
		if err := xdsfield.Check(cvc, "combined_validation_context", "default_validation_context", "validation_context_sds_secret_config"); err != nil {
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
		if err := xdsfield.Check(vc, "validation_context", "trusted_ca", "match_typed_subject_alt_names"); err != nil {
			return nil, err
		}
		if vc.GetTrustedCa() != nil {
			pem, err := meshtls.DataSource(vc.GetTrustedCa())
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
			for i, m := range sans {
				if err := xdsfield.Check(m.GetMatcher(), fmt.Sprintf("validation_context.match_typed_subject_alt_names[%d].matcher", i),
					"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
					return nil, err
				}
			}
			sm, err := meshtls.CompileSANs(sans, nil)
			if err != nil {
				return nil, fmt.Errorf("validation_context.%w", err)
			}
			check := sm.Check
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

// StringMatcher compiles an Envoy StringMatcher, refusing fields it does
// not implement.
func StringMatcher(m *matcherv3.StringMatcher) (func(string) bool, error) {
	if err := xdsfield.Check(m, "string_matcher", "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return nil, err
	}
	return meshtls.StringMatcher(m)
}
