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
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// TestServerALPNLikeEnvoy: a client whose ALPN offer shares nothing with
// the server's list completes the handshake without ALPN (Envoy), where Go
// alone would abort it; overlapping offers still negotiate.
func TestServerALPNLikeEnvoy(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"s"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	cfg, err := ServerTLS(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"istio-peer-exchange", "h2", "http/1.1"},
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: inline(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			PrivateKey:       inline(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})),
		}},
	}}, func(string) *tlsv3.Secret { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		offer []string
		want  string
	}{
		{[]string{"istio-http/1.1"}, ""},
		{[]string{"istio-peer-exchange", "istio"}, "istio-peer-exchange"},
		{[]string{"h2"}, "h2"},
		{nil, ""},
	} {
		a, b := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			errc <- tls.Server(a, cfg).Handshake()
		}()
		cl := tls.Client(b, &tls.Config{InsecureSkipVerify: true, NextProtos: c.offer})
		err := cl.Handshake()
		if err != nil {
			t.Errorf("offer %v: %v", c.offer, err)
		} else if got := cl.ConnectionState().NegotiatedProtocol; got != c.want {
			t.Errorf("offer %v: negotiated %q, want %q", c.offer, got, c.want)
		}
		if err := <-errc; err != nil {
			t.Errorf("offer %v: server: %v", c.offer, err)
		}
		a.Close()
		b.Close()
	}
}
