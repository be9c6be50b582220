package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/rflag"
)

type testPKI struct {
	caPEM            []byte
	ca               *x509.Certificate
	caKey            *ecdsa.PrivateKey
	serverCert       tls.Certificate
	clientPEM, clKey []byte
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/default/sa/backend")
	certPEM, keyPEM := p.issue(t, 2, []string{"backend.example"}, []*url.URL{spiffe})
	p.serverCert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p.clientPEM, p.clKey = p.issue(t, 3, []string{"client.example"}, nil)
	return p
}

func (p *testPKI) issue(t *testing.T, serial int64, dns []string, uris []*url.URL) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: dns[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: dns, URIs: uris,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func (p *testPKI) server(t *testing.T, requireClient bool) (*httptest.Server, chan string) {
	sni := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni <- h.ServerName; return nil, nil }}
	if requireClient {
		pool := x509.NewCertPool()
		pool.AddCert(p.ca)
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = pool
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, sni
}

func tlsSocket(t *testing.T, utc *tlsv3.UpstreamTlsContext) *corev3.TransportSocket {
	a, err := anypb.New(utc)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func sanExact(kind tlsv3.SubjectAltNameMatcher_SanType, v string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: kind, Matcher: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}
}

func TestUpstreamTLS(t *testing.T) {
	p := newPKI(t)
	srv, sni := p.server(t, false)
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		name string
		vc   *tlsv3.CertificateValidationContext
		ok   bool
	}{
		{"dns_san_match", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{sanExact(tlsv3.SubjectAltNameMatcher_DNS, "backend.example")}}, true},
		{"uri_san_match", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
				sanExact(tlsv3.SubjectAltNameMatcher_URI, "spiffe://cluster.local/ns/default/sa/backend")}}, true},
		{"san_mismatch", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{sanExact(tlsv3.SubjectAltNameMatcher_DNS, "other.example")}}, false},
		{"ca_only", &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM)}, true},
		{"wrong_ca", &tlsv3.CertificateValidationContext{TrustedCa: inline(newPKI(t).caPEM)}, false},
		{"no_validation", nil, true}, // Envoy verifies nothing without a validation context
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := staticCluster("egress", addr)
			utc := &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{}}
			if tc.vc != nil {
				utc.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: tc.vc}
			}
			pc.TransportSocket = tlsSocket(t, utc)
			s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
			defer s.Close()
			code, body, _, err := get(t, s.Get("egress"), nil)
			if tc.ok {
				if err != nil || code != 200 || body != "tls ok" {
					t.Fatalf("got %d %q %v", code, body, err)
				}
				if got := <-sni; got != "backend.example" {
					t.Fatalf("sni %q", got)
				}
				return
			}
			if !isFlag(err, rflag.UF) {
				t.Fatalf("got %v, want UF", err)
			}
		})
	}
}

func TestUpstreamMutualTLSWithSDS(t *testing.T) {
	p := newPKI(t)
	srv, _ := p.server(t, true)
	pc := staticCluster("c", srv.Listener.Addr().String())
	pc.TransportSocket = tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
					sanExact(tlsv3.SubjectAltNameMatcher_URI, "spiffe://cluster.local/ns/default/sa/backend")}},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
			}},
	}})
	// Without the secrets the cluster builds but fails closed.
	s, err := Build(nil, []*clusterv3.Cluster{pc}, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = get(t, s.Get("c"), nil)
	if !isFlag(err, rflag.UF) || !strings.Contains(err.Error(), "not available from SDS") {
		t.Fatalf("got %v, want UF naming the missing secret", err)
	}
	secrets := map[string]*tlsv3.Secret{
		"default": {Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(p.clientPEM), PrivateKey: inline(p.clKey)}}},
		"ROOTCA": {Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(p.caPEM)}}},
	}
	// The secrets arriving is a config change: the cluster is rebuilt.
	s2, err := Build(s, []*clusterv3.Cluster{pc}, nil, secrets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	defer s2.Close()
	if code, body, _, err := get(t, s2.Get("c"), nil); err != nil || code != 200 || body != "tls ok" {
		t.Fatalf("mTLS: %d %q %v", code, body, err)
	}
}

// transport_socket_matches: endpoints labelled tlsMode=istio get TLS, the
// others plaintext.
func TestTransportSocketMatches(t *testing.T) {
	p := newPKI(t)
	tlsSrv, _ := p.server(t, false)
	plain := newBackend(t)
	pc := staticCluster("c", tlsSrv.Listener.Addr().String(), plain.addr())
	md, _ := structpb.NewStruct(map[string]any{"tlsMode": "istio"})
	pc.LoadAssignment.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{
		FilterMetadata: map[string]*structpb.Struct{matchMetadataKey: md}}
	pc.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: md, TransportSocket: tlsSocket(t, &tlsv3.UpstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(p.caPEM)}}}})},
		{Name: "tlsMode-disabled", TransportSocket: &corev3.TransportSocket{Name: rawSocketName}},
	}
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	bodies := map[string]int{}
	for range 4 {
		code, body, _, err := get(t, s.Get("c"), nil)
		if err != nil || code != 200 {
			t.Fatalf("%d %v", code, err)
		}
		bodies[body]++
	}
	if bodies["tls ok"] != 2 || bodies[plain.addr()] != 2 {
		t.Fatalf("bodies %v", bodies)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	pc := staticCluster("c", "127.0.0.1:1")
	pc.TransportSocket = tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{sanExact(tlsv3.SubjectAltNameMatcher_DNS, "x")}}}}})
	_, err := Build(nil, []*clusterv3.Cluster{pc}, nil, nil, Options{})
	if err == nil || !strings.Contains(err.Error(), `cluster "c"`) || !strings.Contains(err.Error(), "trusted_ca") {
		t.Fatalf("got %v", err)
	}
}

// HTTP over Istio mutual TLS offers istio-http/1.1 or istio-h2 (Istio's
// istio.alpn filter); TCP keeps the cluster's istio-peer-exchange, istio.
func TestIstioALPNForHTTP(t *testing.T) {
	ts := tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"istio-peer-exchange", "istio"}}})
	st, err := compileSocket(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.cfg.NextProtos, ","); got != "istio-peer-exchange,istio" {
		t.Errorf("tcp ALPN %s", got)
	}
	if got := strings.Join(st.cfgH1.NextProtos, ","); got != "istio-http/1.1" {
		t.Errorf("http/1.1 ALPN %s", got)
	}
	if got := strings.Join(st.cfgH2.NextProtos, ","); got != "istio-h2" {
		t.Errorf("h2 ALPN %s", got)
	}
	// Any other ALPN list is offered as configured.
	st, err = compileSocket(tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2"}}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.cfgH1.NextProtos, ","); got != "h2" {
		t.Errorf("configured ALPN replaced: %s", got)
	}
}
