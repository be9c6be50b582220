package listener

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// TestServerCipherSuites: tls_params.cipher_suites limits TLS 1.2 to the
// named suites (a client offering only others fails), and a name weft-proxy
// does not know is refused naming the field.
func TestServerCipherSuites(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"s"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kd, _ := x509.MarshalECPrivateKey(key)
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	ctx := func(ciphers ...string) *tlsv3.DownstreamTlsContext {
		return &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams: &tlsv3.TlsParameters{TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2, CipherSuites: ciphers},
			TlsCertificates: []*tlsv3.TlsCertificate{{
				CertificateChain: inline(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
				PrivateKey:       inline(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})),
			}},
		}}
	}
	none := func(string) *tlsv3.Secret { return nil }
	cfg, err := ServerTLS(ctx("ECDHE-ECDSA-AES256-GCM-SHA384"), none)
	if err != nil {
		t.Fatal(err)
	}
	handshake := func(suite uint16) error {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go tls.Server(a, cfg).Handshake()
		return tls.Client(b, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}).Handshake()
	}
	if err := handshake(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384); err != nil {
		t.Errorf("the allowed suite: %v", err)
	}
	if err := handshake(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err == nil {
		t.Error("a suite outside cipher_suites was negotiated")
	}
	if _, err := ServerTLS(ctx("RC4-MD5"), none); err == nil || !strings.Contains(err.Error(), "cipher_suites") {
		t.Errorf("unknown cipher: %v", err)
	}
}

// BenchmarkServerHandshake is the cost of one full TLS 1.3 handshake
// (ECDSA P-256) with a gateway server config from ServerTLS, both sides
// in process over net.Pipe: the server's share of a new HTTPS connection.
func BenchmarkServerHandshake(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"s"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kd, _ := x509.MarshalECPrivateKey(key)
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	cfg, err := ServerTLS(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"},
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: inline(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			PrivateKey:       inline(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})),
		}},
	}}, func(string) *tlsv3.Secret { return nil })
	if err != nil {
		b.Fatal(err)
	}
	ccfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, SessionTicketsDisabled: true}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, c := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- tls.Server(a, cfg).Handshake() }()
		if err := tls.Client(c, ccfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		a.Close()
		c.Close()
	}
}
