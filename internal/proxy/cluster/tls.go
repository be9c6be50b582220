package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	// The raw_buffer socket carries no settings, but its typed config must
	// resolve for the config dump (auto mTLS emits it per endpoint).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

const (
	tlsSocketName = "envoy.transport_sockets.tls"
	rawSocketName = "envoy.transport_sockets.raw_buffer"
	// matchMetadataKey is the endpoint filter_metadata namespace that
	// transport_socket_matches compare against (Envoy semantics).
	matchMetadataKey = "envoy.transport_socket_match"
)

// tlsSettings is a compiled UpstreamTlsContext.
type tlsSettings struct {
	cfg *tls.Config
	// cfgH1, cfgH2 offer ALPN http/1.1 or h2 when alpn_protocols is empty,
	// as Envoy's HTTP connection pools do.
	cfgH1, cfgH2 *tls.Config
	// err, when set, makes every connection fail closed (e.g. an SDS secret
	// the control plane has not sent).
	err error
}

// tsMatch is one transport_socket_matches entry.
type tsMatch struct {
	name  string
	match map[string]*structpb.Value
	tls   *tlsSettings // nil: plaintext
}

func (s *settings) compileTransport(pc *clusterv3.Cluster, secrets map[string]*tlsv3.Secret) error {
	var err error
	if s.tls, err = compileSocket(pc.GetTransportSocket(), secrets); err != nil {
		return fmt.Errorf("transport_socket.%w", err)
	}
	for i, m := range pc.GetTransportSocketMatches() {
		path := fmt.Sprintf("transport_socket_matches[%d]", i)
		if err := xdsfield.Check(m, path+".", "name", "match", "transport_socket"); err != nil {
			return err
		}
		t, err := compileSocket(m.GetTransportSocket(), secrets)
		if err != nil {
			return fmt.Errorf("%s.transport_socket.%w", path, err)
		}
		s.matches = append(s.matches, tsMatch{name: m.GetName(), match: m.GetMatch().GetFields(), tls: t})
	}
	return nil
}

// socketFor returns the transport for an endpoint: the first
// transport_socket_matches entry whose match is a subset of the endpoint's
// envoy.transport_socket_match metadata, else the cluster's transport_socket.
func (s *settings) socketFor(md *corev3.Metadata) *tlsSettings {
	if len(s.matches) == 0 {
		return s.tls
	}
	fields := md.GetFilterMetadata()[matchMetadataKey].GetFields()
	for _, m := range s.matches {
		ok := true
		for k, v := range m.match {
			if !proto.Equal(fields[k], v) {
				ok = false
				break
			}
		}
		if ok {
			return m.tls
		}
	}
	return s.tls
}

func compileSocket(ts *corev3.TransportSocket, secrets map[string]*tlsv3.Secret) (*tlsSettings, error) {
	if ts == nil {
		return nil, nil
	}
	switch ts.GetName() {
	case rawSocketName:
		return nil, nil
	case tlsSocketName:
	default:
		return nil, fmt.Errorf("name: transport socket %q not supported", ts.GetName())
	}
	var utc tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&utc); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := xdsfield.Check(&utc, "typed_config.", "common_tls_context", "sni"); err != nil {
		return nil, err
	}
	ctc := utc.GetCommonTlsContext()
	if err := xdsfield.Check(ctc, "typed_config.common_tls_context.", "tls_params", "tls_certificates",
		"tls_certificate_sds_secret_configs", "validation_context", "validation_context_sds_secret_config",
		"combined_validation_context", "alpn_protocols"); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		ServerName: utc.GetSni(),
		NextProtos: ctc.GetAlpnProtocols(),
		MinVersion: tls.VersionTLS12,
		// Verification is done in VerifyConnection with Envoy's semantics:
		// the chain against trusted_ca and SANs against the matchers, never
		// the SNI as a hostname.
		InsecureSkipVerify: true,
		// Resume sessions like Envoy (max_session_keys default 1); resumed
		// handshakes still run VerifyConnection.
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	out := &tlsSettings{cfg: cfg}
	if p := ctc.GetTlsParams(); p != nil {
		if err := xdsfield.Check(p, "typed_config.common_tls_context.tls_params.", "tls_minimum_protocol_version",
			"tls_maximum_protocol_version"); err != nil {
			return nil, err
		}
		cfg.MinVersion = meshtls.TLSVersion(p.GetTlsMinimumProtocolVersion(), tls.VersionTLS12)
		cfg.MaxVersion = meshtls.TLSVersion(p.GetTlsMaximumProtocolVersion(), 0)
	}
	// Client certificates (MUTUAL).
	for i, c := range ctc.GetTlsCertificates() {
		cert, err := loadCert(c)
		if err != nil {
			return nil, fmt.Errorf("typed_config.common_tls_context.tls_certificates[%d].%w", i, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	for _, ref := range ctc.GetTlsCertificateSdsSecretConfigs() {
		sec, ok := secrets[ref.GetName()]
		if !ok || sec.GetTlsCertificate() == nil {
			out.err = fmt.Errorf("tls certificate secret %q not available from SDS", ref.GetName())
			continue
		}
		cert, err := loadCert(sec.GetTlsCertificate())
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", ref.GetName(), err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	// Validation context: inline, SDS, or combined (inline defaults + SDS CA).
	var vcs []*tlsv3.CertificateValidationContext
	sdsRef := ctc.GetValidationContextSdsSecretConfig()
	switch {
	case ctc.GetValidationContext() != nil:
		vcs = append(vcs, ctc.GetValidationContext())
	case ctc.GetCombinedValidationContext() != nil:
		cv := ctc.GetCombinedValidationContext()
		if err := xdsfield.Check(cv, "typed_config.common_tls_context.combined_validation_context.",
			"default_validation_context", "validation_context_sds_secret_config"); err != nil {
			return nil, err
		}
		vcs = append(vcs, cv.GetDefaultValidationContext())
		sdsRef = cv.GetValidationContextSdsSecretConfig()
	}
	if sdsRef != nil {
		sec, ok := secrets[sdsRef.GetName()]
		if !ok || sec.GetValidationContext() == nil {
			out.err = fmt.Errorf("validation context secret %q not available from SDS", sdsRef.GetName())
		} else {
			vcs = append(vcs, sec.GetValidationContext())
		}
	}
	v := &verifier{}
	for _, vc := range vcs {
		if vc == nil {
			continue
		}
		if err := v.add(vc); err != nil {
			return nil, fmt.Errorf("typed_config.common_tls_context.validation_context.%w", err)
		}
	}
	if len(v.sans) > 0 && v.roots == nil && out.err == nil {
		// Envoy refuses SAN checks without a trust anchor.
		return nil, errors.New("typed_config.common_tls_context.validation_context: SAN matching requires trusted_ca")
	}
	if v.roots != nil {
		cfg.VerifyConnection = v.verify
	}
	out.cfgH1, out.cfgH2 = cfg, cfg
	if isIstioMTLSALPN(cfg.NextProtos) {
		// Istio's istio.alpn filter: HTTP over Istio mutual TLS offers
		// istio-http/1.1 or istio-h2 instead, so the server's filter chain
		// match can tell HTTP from TCP on sniffed ports.
		out.cfgH1, out.cfgH2 = cfg.Clone(), cfg.Clone()
		out.cfgH1.NextProtos = []string{"istio-http/1.1"}
		out.cfgH2.NextProtos = []string{"istio-h2"}
	}
	if len(cfg.NextProtos) == 0 {
		out.cfgH1, out.cfgH2 = cfg.Clone(), cfg.Clone()
		out.cfgH1.NextProtos = []string{"http/1.1"}
		out.cfgH2.NextProtos = []string{"h2"}
	}
	return out, nil
}

// isIstioMTLSALPN reports whether a cluster's ALPN is the one Istio gives
// ISTIO_MUTUAL clusters.
func isIstioMTLSALPN(p []string) bool {
	return len(p) == 2 && p[0] == "istio-peer-exchange" && p[1] == "istio"
}

func loadCert(c *tlsv3.TlsCertificate) (tls.Certificate, error) {
	if err := xdsfield.Check(c, "", "certificate_chain", "private_key"); err != nil {
		return tls.Certificate{}, err
	}
	chain, err := meshtls.DataSource(c.GetCertificateChain())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate_chain: %w", err)
	}
	key, err := meshtls.DataSource(c.GetPrivateKey())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("private_key: %w", err)
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate_chain: %w", err)
	}
	return cert, nil
}

// verifier checks a peer chain against roots and SAN matchers.
type verifier struct {
	roots *x509.CertPool
	sans  []*meshtls.SANMatcher // any of them accepting is enough
}

func (v *verifier) add(vc *tlsv3.CertificateValidationContext) error {
	if err := xdsfield.Check(vc, "", "trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names"); err != nil {
		return err
	}
	if vc.GetTrustedCa() != nil {
		pem, err := meshtls.DataSource(vc.GetTrustedCa())
		if err != nil {
			return fmt.Errorf("trusted_ca: %w", err)
		}
		if v.roots == nil {
			v.roots = x509.NewCertPool()
		}
		if !v.roots.AppendCertsFromPEM(pem) {
			return errors.New("trusted_ca: no PEM certificates found")
		}
	}
	sans, err := meshtls.CompileSANs(vc.GetMatchTypedSubjectAltNames(), vc.GetMatchSubjectAltNames())
	if err != nil {
		return err
	}
	if sans != nil {
		v.sans = append(v.sans, sans)
	}
	return nil
}

func (v *verifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("upstream presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("upstream certificate verification failed: %w", err)
	}
	if len(v.sans) == 0 {
		return nil
	}
	var err error
	for _, m := range v.sans {
		if err = m.Check(leaf); err == nil {
			return nil
		}
	}
	return fmt.Errorf("upstream certificate: %w", err)
}

// verifies reports whether connections with these settings verify the
// upstream's certificate (a trust anchor is configured).
func (t *tlsSettings) verifies() bool { return t != nil && t.cfg.VerifyConnection != nil }

// verifiedState is the TLS state of nc when t verified its peer, else nil.
func verifiedState(t *tlsSettings, nc net.Conn) *tls.ConnectionState {
	tc, ok := nc.(*tls.Conn)
	if !ok || !t.verifies() {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}

// alpnUse says which default ALPN a connection offers.
type alpnUse uint8

const (
	alpnRaw alpnUse = iota // TCP proxy: only what the config says
	alpnH1
	alpnH2
)

// handshake wraps a dialed connection in TLS when the host's transport says
// so; nil settings mean plaintext.
func (t *tlsSettings) handshake(ctx context.Context, nc net.Conn, use alpnUse) (net.Conn, error) {
	if t == nil {
		return nc, nil
	}
	if t.err != nil {
		nc.Close()
		return nil, t.err
	}
	cfg := t.cfg
	switch use {
	case alpnH1:
		cfg = t.cfgH1
	case alpnH2:
		cfg = t.cfgH2
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}
