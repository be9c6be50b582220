package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtls"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCSR(t testing.TB, uris ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func verifyChain(t *testing.T, s *Signed, bundle []byte, at time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("empty bundle")
	}
	inter := x509.NewCertPool()
	for _, p := range s.Chain[1:] {
		inter.AppendCertsFromPEM([]byte(p))
	}
	if _, err := s.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
}

func TestSelfSignedPersistedAndSigns(t *testing.T) {
	state := t.TempDir()
	c, err := New(Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{rootCertFile, rootKeyFile} {
		fi, err := os.Stat(filepath.Join(state, "ca", f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if c.SigningCert().PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("root key %v, want ECDSA", c.SigningCert().PublicKeyAlgorithm)
	}
	// A restart keeps the root.
	c2, err := New(Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if !c2.SigningCert().Equal(c.SigningCert()) {
		t.Fatal("restart generated a new root")
	}

	// The CSR asks for another identity: ignored, the caller's is used.
	csr, _ := newCSR(t, "spiffe://cluster.local/ns/kube-system/sa/admin")
	id := meshtls.Identity{Namespace: "default", ServiceAccount: "sleep"}
	s, err := c2.SignCSR(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cert.URIs) != 1 || s.Cert.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/sleep" {
		t.Fatalf("URIs %v", s.Cert.URIs)
	}
	if got := s.Cert.NotAfter.Sub(s.Cert.NotBefore); got != DefaultCertTTL+backdate {
		t.Errorf("validity %v, want 24h (+%v backdate)", got, backdate)
	}
	if s.Cert.IsCA {
		t.Error("workload certificate is a CA")
	}
	verifyChain(t, s, c.TrustBundle(), time.Now())
}

func TestSignOptions(t *testing.T) {
	td := "example.org"
	c, err := New(Options{TrustDomain: func() string { return td }, CertTTL: time.Hour, MaxTTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t)
	id := meshtls.Identity{Namespace: "a", ServiceAccount: "b"}
	s, err := c.SignCSR(csr, id, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s.Cert.URIs[0].String() != "spiffe://example.org/ns/a/sa/b" {
		t.Errorf("URI %v", s.Cert.URIs[0])
	}
	if got := s.Cert.NotAfter.Sub(s.Cert.NotBefore); got != 90*time.Minute+backdate {
		t.Errorf("validity %v", got)
	}
	if _, err := c.SignCSR(csr, id, 3*time.Hour); err == nil {
		t.Error("TTL above the maximum accepted")
	}
	if _, err := c.SignCSR([]byte("garbage"), id, 0); err == nil {
		t.Error("garbage CSR accepted")
	}
	// A CSR whose signature does not match its key.
	bad := []byte(strings.Replace(string(csr), "A", "B", 1))
	if _, err := c.SignCSR(bad, id, 0); err == nil {
		t.Error("tampered CSR accepted")
	}
	small, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, small)
	if _, err := c.SignCSR(der, id, 0); err == nil || !strings.Contains(err.Error(), "curve") {
		t.Errorf("P-224 key: %v", err)
	}
}

// writePlugin writes a root and an intermediate in Istio's cacerts layout.
func writePlugin(t *testing.T) (dir string, root *x509.Certificate) {
	t.Helper()
	dir = t.TempDir()
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * 365 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rder, _ := x509.CreateCertificate(rand.Reader, rt, rt, rk.Public(), rk)
	root, _ = x509.ParseCertificate(rder)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mesh intermediate"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * 100 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ider, _ := x509.CreateCertificate(rand.Reader, it, root, ik.Public(), rk)
	ikDER, _ := x509.MarshalPKCS8PrivateKey(ik)
	put := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put(PluginCert, encodeCert(ider))
	put(PluginKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ikDER}))
	put(PluginRoot, encodeCert(rder))
	put(PluginChain, append(encodeCert(ider), encodeCert(rder)...))
	return dir, root
}

func TestPluginCA(t *testing.T) {
	dir, root := writePlugin(t)
	c, err := New(Options{PluginDir: dir, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t)
	s, err := c.SignCSR(csr, meshtls.Identity{Namespace: "ns", ServiceAccount: "sa"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf + intermediate", len(s.Chain))
	}
	if got := string(c.TrustBundle()); got != string(encodeCert(root.Raw)) {
		t.Error("bundle is not the plug-in root")
	}
	if s.Cert.NotAfter.After(c.SigningCert().NotAfter) {
		t.Error("leaf outlives its issuer")
	}
	verifyChain(t, s, c.TrustBundle(), time.Now())
	if err := c.Rotate(); err == nil {
		t.Error("plug-in CA rotated")
	}

	// A key that does not match, and a cert that does not chain.
	other, _ := writePlugin(t)
	b, _ := os.ReadFile(filepath.Join(other, PluginKey))
	os.WriteFile(filepath.Join(dir, PluginKey), b, 0o600)
	if _, err := New(Options{PluginDir: dir}); err == nil || !strings.Contains(err.Error(), "match") {
		t.Errorf("mismatched key: %v", err)
	}
	b, _ = os.ReadFile(filepath.Join(other, PluginRoot))
	os.WriteFile(filepath.Join(other, PluginRoot), []byte("x"), 0o600)
	if _, err := New(Options{PluginDir: other}); err == nil {
		t.Error("missing root accepted")
	}
	_ = b
	if _, err := New(Options{PluginDir: t.TempDir()}); err == nil {
		t.Error("empty plug-in dir accepted")
	}
}

func TestRootRotation(t *testing.T) {
	clk := &clock{t: time.Now()}
	state := t.TempDir()
	opts := Options{StateDir: state, Now: clk.Now, CertTTL: time.Hour, MaxTTL: 2 * time.Hour}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	notified := 0
	c.OnChange(func() { notified++ })
	oldRoot := c.SigningCert()
	id := meshtls.Identity{Namespace: "ns", ServiceAccount: "sa"}
	csr, _ := newCSR(t)
	before, err := c.SignCSR(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}

	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rotate(); err != ErrRotationInProgress {
		t.Errorf("second Rotate: %v", err)
	}
	if n := len(c.bundle); n != 2 || notified != 1 {
		t.Fatalf("after Rotate: %d roots in the bundle, %d notifications", n, notified)
	}
	if !c.SigningCert().Equal(oldRoot) {
		t.Fatal("new root signs before the bundle grace")
	}
	bundleDuring := c.TrustBundle()
	// Old certificates verify against the bundle that carries both roots.
	verifyChain(t, before, bundleDuring, clk.Now())

	// Restart during the rotation: still pending.
	c, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Rotating(); !p || len(c.bundle) != 2 {
		t.Fatal("restart lost the pending root")
	}
	clk.Add(30 * time.Minute)
	if changed, err := c.Advance(); err != nil || changed {
		t.Fatalf("Advance before grace: %v %v", changed, err)
	}
	clk.Add(31 * time.Minute)
	if changed, err := c.Advance(); err != nil || !changed {
		t.Fatalf("Advance after grace: %v %v", changed, err)
	}
	if c.SigningCert().Equal(oldRoot) {
		t.Fatal("new root does not sign after the grace")
	}
	after, err := c.SignCSR(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A proxy that got the bundle during the grace trusts the new leaves;
	// peers with old leaves are still trusted with the current bundle.
	verifyChain(t, after, bundleDuring, clk.Now())
	verifyChain(t, before, c.TrustBundle(), before.Cert.NotAfter.Add(-time.Second))
	verifyChain(t, after, c.TrustBundle(), clk.Now())

	// Restart: the promoted root and the retired one persist.
	c, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Rotating(); p || len(c.bundle) != 2 || c.SigningCert().Equal(oldRoot) {
		t.Fatalf("after restart: pending %v, %d roots", p, len(c.bundle))
	}
	if _, err := os.Stat(filepath.Join(state, "ca", pendingKeyFile)); !os.IsNotExist(err) {
		t.Error("pending key left behind")
	}
	// Once every old certificate expired, the old root leaves the bundle.
	clk.Add(2*time.Hour + time.Second)
	if changed, err := c.Advance(); err != nil || !changed {
		t.Fatalf("Advance after MaxTTL: %v %v", changed, err)
	}
	if len(c.bundle) != 1 || !c.bundle[0].Equal(c.SigningCert()) {
		t.Fatal("old root still in the bundle")
	}
}

func TestServingCert(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.ServingCert([]string{"localhost", "127.0.0.1", "weft.istio-system.svc"}, meshtls.Identity{Namespace: "istio-system", ServiceAccount: "weft"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := cert.Leaf.VerifyHostname("weft.istio-system.svc"); err != nil {
		t.Error(err)
	}
	if id, err := meshtls.CertIdentity(cert.Leaf); err != nil || id.Namespace != "istio-system" {
		t.Errorf("identity %v %v", id, err)
	}
}
