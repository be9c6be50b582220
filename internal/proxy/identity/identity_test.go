package identity

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/proxy/listener"
)

// testCA stands in for the control plane's CA (the proxy's tests do not
// import it): it signs CSRs for a fixed identity.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	ttl  time.Duration
	id   string
	// mutate, when set, edits the answer (bad answers).
	mutate func([]string) []string
	calls  atomic.Int64
	token  atomic.Value
}

func newTestCA(t testing.TB) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ttl: time.Hour,
		id: "spiffe://cluster.local/ns/foo/sa/bar"}
}

func (ca *testCA) request(_ context.Context, csrPEM []byte, token string) ([]string, error) {
	ca.calls.Add(1)
	ca.token.Store(token)
	b, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(ca.id)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, URIs: []*url.URL{u}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(ca.ttl),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	out := []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(ca.pem)}
	if ca.mutate != nil {
		out = ca.mutate(out)
	}
	return out, nil
}

func newManager(t testing.TB, ca *testCA) *Manager {
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(root, ca.pem, 0o644)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("wjt1.token\n"), 0o600)
	m, err := New(Options{CAAddress: "127.0.0.1:15012", RootCertFile: root, TokenFile: tok, Request: ca.request})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFetchAndSecrets(t *testing.T) {
	ca := newTestCA(t)
	m := newManager(t, ca)
	changed := 0
	m.OnChange(func() { changed++ })
	if err := m.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ca.token.Load(); got != "wjt1.token" {
		t.Errorf("token sent %q", got)
	}
	c := m.Current()
	if c.Identity.String() != ca.id || changed != 1 {
		t.Fatalf("identity %s, %d changes", c.Identity, changed)
	}
	if c.Leaf.PublicKeyAlgorithm != x509.ECDSA || c.Leaf.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Error("key is not ECDSA P-256")
	}
	// Renewal at half the remaining lifetime.
	half := c.Received.Add(c.Leaf.NotAfter.Sub(c.Received) / 2)
	if d := c.RenewAt.Sub(half); d < -time.Second || d > time.Second {
		t.Errorf("RenewAt %v, want about %v", c.RenewAt, half)
	}
	sec := m.Secrets()
	if sec[SecretDefault].GetTlsCertificate().GetPrivateKey() == nil || sec[SecretRootCA].GetValidationContext().GetTrustedCa() == nil {
		t.Fatalf("secrets %v", sec)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.SecretVersion()); err != nil {
		t.Errorf("version %q: %v", m.SecretVersion(), err)
	}
	// A second fetch is a rotation with a new key.
	if err := m.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Rotations() != 1 || m.Current().Leaf.PublicKey.(*ecdsa.PublicKey).Equal(c.Leaf.PublicKey) {
		t.Error("rotation kept the key")
	}
}

func TestBadAnswersRefused(t *testing.T) {
	other := newTestCA(t)
	for name, mutate := range map[string]func([]string) []string{
		"no roots":     func(s []string) []string { return s[:1] },
		"foreign root": func(s []string) []string { return []string{s[0], string(other.pem)} },
		"another key": func(s []string) []string {
			o, _ := other.request(context.Background(), csrPEM(t), "")
			return []string{o[0], s[1]}
		},
		"not pem": func(s []string) []string { return []string{"junk", s[1]} },
	} {
		ca := newTestCA(t)
		ca.mutate = mutate
		m := newManager(t, ca)
		if err := m.Fetch(context.Background()); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if m.Current() != nil {
			t.Errorf("%s: a certificate is held", name)
		}
	}
	ca := newTestCA(t)
	ca.id = "spiffe://cluster.local/not/a/workload"
	if err := newManager(t, ca).Fetch(context.Background()); err == nil {
		t.Error("a certificate without a workload identity accepted")
	}
}

func csrPEM(t testing.TB) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{CAAddress: "x:1"}); err == nil {
		t.Error("no root file accepted (trust on first use)")
	}
	f := filepath.Join(t.TempDir(), "root")
	os.WriteFile(f, []byte("not a cert"), 0o644)
	if _, err := New(Options{CAAddress: "x:1", RootCertFile: f}); err == nil {
		t.Error("a root file without certificates accepted")
	}
	ca := newTestCA(t)
	m := newManager(t, ca)
	m.opts.TokenFile = filepath.Join(t.TempDir(), "missing")
	if err := m.Fetch(context.Background()); err == nil {
		t.Error("first certificate without a token file")
	}
}

func TestRunRenews(t *testing.T) {
	ca := newTestCA(t)
	ca.ttl = 2 * time.Second
	m := newManager(t, ca)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for m.Rotations() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rotations in 20s with a 2s certificate", m.Rotations())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProtoCodec(t *testing.T) {
	req := encodeRequest([]byte("csr"), 3600)
	// csr (1) = "csr", validity_duration (3) = 3600
	if string(req) != "\x0a\x03csr\x18\x90\x1c" {
		t.Errorf("request %q", req)
	}
	// cert_chain twice, and an unknown field to skip.
	resp := []byte("\x0a\x01a\x10\x05\x0a\x01b")
	got, err := decodeResponse(resp)
	if err != nil || len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("decode %q %v", got, err)
	}
	if _, err := decodeResponse([]byte("\x0a\x09a")); err == nil {
		t.Error("truncated response accepted")
	}
}

// pair builds the server side of an inbound mTLS chain (as the control
// plane configures it: "default" and "ROOTCA" by SDS, client certificate
// required) and a client config with another workload's certificate.
func pair(b testing.TB) (server, client *tls.Config) {
	ca := newTestCA(b)
	srv, cli := newManager(b, ca), newManager(b, ca)
	for _, m := range []*Manager{srv, cli} {
		if err := m.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	secrets := srv.Secrets()
	d := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"istio-http/1.1", "istio", "http/1.1"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: SecretDefault}},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA}},
	}}
	d.RequireClientCertificate = wrapperTrue()
	server, err := listener.ServerTLS(d, func(n string) *tlsv3.Secret { return secrets[n] })
	if err != nil {
		b.Fatal(err)
	}
	c := cli.Current()
	client = &tls.Config{Certificates: []tls.Certificate{c.TLS}, NextProtos: []string{"istio-http/1.1"},
		InsecureSkipVerify: true, // SPIFFE certificates carry no DNS name: verify the chain and URI below
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: c.Roots, Intermediates: inter}); err != nil {
				return err
			}
			id, err := meshtls.PeerIdentity(&cs)
			if err != nil || id.ServiceAccount != "bar" {
				return errors.New("unexpected peer identity")
			}
			return nil
		}}
	return server, client
}

// BenchmarkMTLSHandshake: a full mutual TLS handshake between two
// workloads (ECDSA P-256, TLS 1.3), as a new sidecar-to-sidecar connection
// costs.
func BenchmarkMTLSHandshake(b *testing.B) {
	server, client := pair(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s := tls.Server(c, server)
			errc <- s.Handshake()
			c.Close()
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c := tls.Client(nc, client)
		if err := c.Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		nc.Close()
	}
}

// BenchmarkMTLSRequest: one small HTTP/1.1 request and response on an
// established mutual TLS connection (the per-request cost of mTLS between
// sidecars, beside plaintext).
func BenchmarkMTLSRequest(b *testing.B) {
	for _, mode := range []string{"mtls", "plaintext"} {
		b.Run(mode, func(b *testing.B) {
			server, client := pair(b)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			if mode == "mtls" {
				ln = tls.NewListener(ln, server)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
			go srv.Serve(ln)
			defer srv.Close()
			var conn net.Conn
			if mode == "mtls" {
				client.NextProtos = []string{"http/1.1"} // net/http serves no istio-* ALPN
				conn, err = tls.Dial("tcp", ln.Addr().String(), client)
			} else {
				conn, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			req := []byte("GET /get HTTP/1.1\r\nHost: httpbin\r\n\r\n")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}

func TestPairHandshake(t *testing.T) {
	server, client := pair(t)
	c1, c2 := net.Pipe()
	errc := make(chan error, 1)
	go func() { s := tls.Server(c2, server); errc <- s.Handshake(); s.Close() }()
	c := tls.Client(c1, client)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.ConnectionState().NegotiatedProtocol, "istio") {
		t.Errorf("ALPN %q", c.ConnectionState().NegotiatedProtocol)
	}
	c.Close()
	// Without a client certificate the server refuses.
	c1, c2 = net.Pipe()
	go func() { s := tls.Server(c2, server); errc <- s.Handshake(); s.Close() }()
	noCert := client.Clone()
	noCert.Certificates = nil
	// net.Pipe is synchronous: read the server's alert, then close.
	nc := tls.Client(c1, noCert)
	if err := nc.Handshake(); err == nil {
		nc.Read(make([]byte, 1))
	}
	c1.Close()
	if err := <-errc; err == nil {
		t.Error("handshake without a client certificate accepted")
	}
}

func wrapperTrue() *wrapperspb.BoolValue { return wrapperspb.Bool(true) }
