package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// startSecure runs a control plane with only the secure port (as the CLI
// does by default) and returns it with its state dir.
func startSecure(t *testing.T) (*server.Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "svc.yaml"), []byte(bookinfo), 0o644)
	s, err := server.New(server.Options{ConfigDir: dir, SecureAddress: "127.0.0.1:0", MonitoringAddress: "127.0.0.1:0",
		Grace: -1, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.XDSAddr() != "" {
		t.Fatalf("plaintext xDS on %s without being asked for", s.XDSAddr())
	}
	run(t, s)
	return s, server.DefaultStateDir(dir)
}

// mintToken runs `weft token create` against the state dir, as an
// operator would.
func mintToken(t *testing.T, stateDir, ns, sa string) string {
	t.Helper()
	var out, errb strings.Builder
	if code := cli.Main([]string{"token", "create", "--state-dir", stateDir, "-n", ns, "--service-account", sa, "--ttl", "1h"}, nil, &out, &errb); code != 0 {
		t.Fatalf("weft token create: %d %s", code, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func csrFor(t *testing.T) (string, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func tlsTo(s *server.Server, cert *tls.Certificate) grpc.DialOption {
	cfg := &tls.Config{RootCAs: s.CA().Pool(), ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
}

// getCert asks the CA for a certificate with a token.
func getCert(t *testing.T, s *server.Server, token string) (*tls.Certificate, error) {
	t.Helper()
	conn, err := grpc.NewClient(s.SecureAddr(), tlsTo(s, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	csr, key := csrFor(t)
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: csr})
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode([]byte(resp.CertChain[0]))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func TestSecurePortCSR(t *testing.T) {
	s, state := startSecure(t)
	if _, err := getCert(t, s, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CSR without a token: %v, want Unauthenticated", err)
	}
	if _, err := getCert(t, s, "wjt1.forged.token"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CSR with a forged token: %v, want Unauthenticated", err)
	}
	cert, err := getCert(t, s, mintToken(t, state, "a", "app"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://cluster.local/ns/a/sa/app" {
		t.Fatalf("token for namespace a got a certificate for %s", got)
	}
	// The private state stays private.
	for _, f := range []string{"token.key", "ca/root-key.pem"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
}

func TestSecurePortXDS(t *testing.T) {
	s, state := startSecure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	meta := &node.Meta{Type: node.Sidecar, IP: "10.0.0.7", Name: "reviews-v1", Namespace: "default", ServiceAccount: "bookinfo-reviews",
		Labels: map[string]string{"app": "reviews"}, Ports: []node.Port{{Name: "http", Port: 9080, Protocol: "HTTP"}}}

	// A plaintext client cannot talk to the secure port.
	c, err := meshtest.DialXDS(s.SecureAddr(), meta, meshtest.XDSClientOptions{DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}})
	if err != nil {
		t.Fatal(err)
	}
	waitErr(ctx, t, c, "plaintext client")
	c.Close()

	// TLS without a client certificate: refused.
	c, err = meshtest.DialXDS(s.SecureAddr(), meta, meshtest.XDSClientOptions{DialOptions: []grpc.DialOption{tlsTo(s, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitErr(ctx, t, c, "no client certificate"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no client certificate: %v, want Unauthenticated", err)
	}
	c.Close()

	cert, err := getCert(t, s, mintToken(t, state, "default", "bookinfo-reviews"))
	if err != nil {
		t.Fatal(err)
	}
	// Metadata that claims another identity than the certificate's.
	liar := *meta
	liar.Namespace, liar.ServiceAccount = "istio-system", "istio-ingressgateway-service-account"
	c, err = meshtest.DialXDS(s.SecureAddr(), &liar, meshtest.XDSClientOptions{DialOptions: []grpc.DialOption{tlsTo(s, cert)}})
	if err != nil {
		t.Fatal(err)
	}
	err = waitErr(ctx, t, c, "mismatched metadata")
	if !strings.Contains(err.Error(), "its credential is for spiffe://cluster.local/ns/default/sa/bookinfo-reviews") {
		t.Errorf("mismatch error %q does not name the verified identity", err)
	}
	c.Close()
	if n := s.XDS().Metrics().IdentityMismatches(); n != 1 {
		t.Errorf("identity mismatches counted: %d, want 1", n)
	}
	for _, p := range s.XDS().Status() {
		t.Errorf("a refused proxy is registered: %s", p.ID)
	}

	// The honest proxy gets its config, under its verified identity.
	c, err = meshtest.DialXDS(s.SecureAddr(), meta, meshtest.XDSClientOptions{Delta: true, DialOptions: []grpc.DialOption{tlsTo(s, cert)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitFor(ctx, func(c *meshtest.XDSClient) bool { return len(c.Resources(resource.ListenerType)) > 0 }); err != nil {
		t.Fatalf("no listeners over mTLS: %v (stream error %v)", err, c.Err())
	}
	st := s.XDS().Status()
	if len(st) != 1 || st[0].Identity != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Fatalf("proxy status %+v", st)
	}
}

// waitErr waits for the client's stream to fail and returns the error.
func waitErr(ctx context.Context, t *testing.T, c *meshtest.XDSClient, what string) error {
	t.Helper()
	for c.Err() == nil {
		if ctx.Err() != nil {
			t.Fatalf("%s: the stream was not refused", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(c.Resources(resource.ListenerType)) > 0 {
		t.Errorf("%s: got listeners", what)
	}
	return c.Err()
}
