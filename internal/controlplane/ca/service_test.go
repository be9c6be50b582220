package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/weftmesh/weft/internal/meshtls"
)

func TestTokens(t *testing.T) {
	clk := &clock{t: time.Now()}
	state := t.TempDir()
	tk, err := LoadTokens(state, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(state, tokenKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token key: %v %v", fi, err)
	}
	tok, err := tk.Create("bookinfo", "reviews", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The same state dir, loaded again (as `weft token create` does).
	tk2, err := LoadTokens(state, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	id, exp, err := tk2.Verify(tok)
	if err != nil || id.Namespace != "bookinfo" || id.ServiceAccount != "reviews" {
		t.Fatalf("Verify: %v %v", id, err)
	}
	if !exp.After(clk.Now()) {
		t.Error("expiry in the past")
	}
	other := NewTokens([]byte("0123456789abcdef0123456789abcdef"), clk.Now)
	if _, _, err := other.Verify(tok); err != ErrTokenSignature {
		t.Errorf("another key: %v", err)
	}
	// Change the namespace in the payload, keep the signature.
	parts := strings.Split(tok, ".")
	forged, _ := other.Create("kube-system", "reviews", time.Hour)
	fparts := strings.Split(forged, ".")
	if _, _, err := tk.Verify(parts[0] + "." + fparts[1] + "." + parts[2]); err != ErrTokenSignature {
		t.Errorf("forged payload: %v", err)
	}
	for _, bad := range []string{"", "wjt1.", "wjt1..", "nope.a.b", tok + "x", strings.Repeat("a", 5000)} {
		if _, _, err := tk.Verify(bad); err == nil {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
	clk.Add(time.Hour)
	if _, _, err := tk.Verify(tok); err != ErrTokenExpired {
		t.Errorf("expired: %v", err)
	}
	for _, n := range []string{"", "A", "-a", "a/b", "a b"} {
		if _, err := tk.Create(n, "sa", 0); err == nil {
			t.Errorf("namespace %q accepted", n)
		}
	}
}

// caServer runs the service over TLS on loopback, as the control plane
// does on 15012 (client certificates optional).
func caServer(t *testing.T, c *CA, tk *Tokens) string {
	t.Helper()
	cert, err := c.ServingCert([]string{"127.0.0.1"}, meshtls.Identity{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: c.Pool(), MinVersion: tls.VersionTLS12})
	g := grpc.NewServer(grpc.Creds(creds))
	NewService(c, []Authenticator{CertAuthenticator{}, TokenAuthenticator{Tokens: tk}}, nil).Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); wg.Wait() })
	return ln.Addr().String()
}

func call(t *testing.T, addr string, c *CA, token string, clientCert *tls.Certificate, csr []byte) (*pb.IstioCertificateResponse, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: c.Pool(), ServerName: "127.0.0.1"}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csr)})
}

func TestCreateCertificate(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tk := NewTokens([]byte("fedcba9876543210fedcba9876543210"), nil)
	addr := caServer(t, c, tk)
	csr, key := newCSR(t, "spiffe://cluster.local/ns/b/sa/admin")

	// No credential, a bad token, a token of another CA's key: refused.
	foreign, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"), nil).Create("a", "x", time.Hour)
	for name, tok := range map[string]string{"none": "", "garbage": "wjt1.xx.yy", "foreign": foreign} {
		_, err := call(t, addr, c, tok, nil, csr)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s token: %v, want Unauthenticated", name, err)
		}
	}

	// A token for namespace a gets a certificate for a, whatever the CSR
	// asks for.
	tokA, _ := tk.Create("a", "x", time.Hour)
	resp, err := call(t, addr, c, tokA, nil, csr)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.CertChain) != 2 {
		t.Fatalf("cert_chain has %d elements, want leaf + root", len(resp.CertChain))
	}
	if resp.CertChain[1] != string(c.TrustBundle()) {
		t.Error("last element is not the trust bundle")
	}
	b, _ := pem.Decode([]byte(resp.CertChain[0]))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.URIs[0].String(); got != "spiffe://cluster.local/ns/a/sa/x" {
		t.Fatalf("certificate for %s, want namespace a's identity", got)
	}

	// Renewal with the certificate (no token): same identity.
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	csr2, _ := newCSR(t)
	resp, err = call(t, addr, c, "", cert, csr2)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = pem.Decode([]byte(resp.CertChain[0]))
	leaf2, _ := x509.ParseCertificate(b.Bytes)
	if leaf2.URIs[0].String() != "spiffe://cluster.local/ns/a/sa/x" {
		t.Fatalf("renewed certificate for %s", leaf2.URIs[0])
	}

	// A certificate from another CA is not a credential.
	other, _ := New(Options{})
	otherLeaf, _ := other.SignCSR(csr2, meshtls.Identity{Namespace: "b", ServiceAccount: "admin"}, 0)
	_ = otherLeaf
	if _, err := call(t, addr, c, "", &tls.Certificate{Certificate: [][]byte{otherLeaf.Cert.Raw}, PrivateKey: key}, csr2); err == nil {
		t.Error("certificate of another CA accepted")
	}
}
