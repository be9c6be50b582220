// Package ca is the control plane's certificate authority: it keeps the
// signing key and the trust bundle, signs workload certificates for
// authenticated callers (SPIFFE URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, the
// identity taken from the caller's verified credential, never from the
// CSR), serves Istio's IstioCertificateService, issues the control plane's
// own serving certificate and rotates its root with an overlapping trust
// bundle.
//
// Two sources for the signing key, as istiod:
//   - self-signed: a root (ECDSA P-256) generated on first start and kept
//     in <state-dir>/ca (files mode 0600);
//   - plug-in: Istio's cacerts layout (ca-cert.pem, ca-key.pem,
//     root-cert.pem, cert-chain.pem), for an intermediate from an existing
//     PKI. Its rotation is the operator's (replace the files, restart).
package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/statedir"
	"github.com/weftmesh/weft/internal/meshtls"
)

// Defaults, as Istio's.
const (
	DefaultCertTTL = 24 * time.Hour
	DefaultMaxTTL  = 90 * 24 * time.Hour
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	// backdate tolerates clock skew between the CA and the peers that
	// verify its certificates.
	backdate = time.Minute
)

// Files in the plug-in (cacerts) directory, Istio's names.
const (
	PluginCert  = "ca-cert.pem"
	PluginKey   = "ca-key.pem"
	PluginRoot  = "root-cert.pem"
	PluginChain = "cert-chain.pem"
)

// Options configure a CA.
type Options struct {
	// StateDir is the control plane's private state directory; the
	// self-signed root lives in StateDir/ca. Empty: an in-memory root
	// (tests).
	StateDir string
	// PluginDir, when set, holds Istio's cacerts files, used instead of a
	// self-signed root.
	PluginDir string
	// TrustDomain returns the mesh's trust domain (MeshConfig trustDomain)
	// at signing time; nil or "" means cluster.local.
	TrustDomain func() string
	// CertTTL is the workload certificate lifetime when a CSR asks for none
	// (default 24h); MaxTTL caps what a CSR may ask for (default 90 days).
	CertTTL, MaxTTL time.Duration
	// RootTTL is a self-signed root's lifetime (default 10 years).
	RootTTL time.Duration
	// BundleGrace is how long a new root is distributed in the trust
	// bundle before anything is signed with it (default CertTTL: every
	// proxy renews at half-life, so all hold it by then).
	BundleGrace time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// CA signs certificates. Methods are safe for concurrent use.
type CA struct {
	opts   Options
	log    *slog.Logger
	plugin bool

	mu      sync.RWMutex
	signer  *keyCert            // signs workload and serving certificates
	chain   []*x509.Certificate // signer's chain above it, up to (excluding) the root
	bundle  []*x509.Certificate // the trust bundle: roots proxies must accept
	pool    *x509.CertPool      // bundle as a pool
	state   rotationState       // self-signed mode: pending and retired roots
	pending *keyCert            // a root in the bundle that does not sign yet
	subs    []func()            // called after the bundle or signer changed
}

type keyCert struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// rotationState is persisted beside the roots (rotation.json).
type rotationState struct {
	// PendingSince: when the pending root entered the bundle.
	PendingSince time.Time `json:"pendingSince,omitzero"`
	// Retired roots stay in the bundle until every certificate they signed
	// has expired.
	Retired []retiredRoot `json:"retired,omitempty"`
}

type retiredRoot struct {
	CertPEM string    `json:"cert"`
	Until   time.Time `json:"until"`
}

// Files of the self-signed CA in <state-dir>/ca.
const (
	rootCertFile    = "root-cert.pem"
	rootKeyFile     = "root-key.pem"
	pendingCertFile = "next-root-cert.pem"
	pendingKeyFile  = "next-root-key.pem"
	rotationFile    = "rotation.json"
)

// New loads the CA (plug-in files, or the self-signed root in the state
// dir, generated on first start).
func New(opts Options) (*CA, error) {
	if opts.CertTTL <= 0 {
		opts.CertTTL = DefaultCertTTL
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.MaxTTL < opts.CertTTL {
		opts.MaxTTL = opts.CertTTL
	}
	if opts.RootTTL <= 0 {
		opts.RootTTL = DefaultRootTTL
	}
	if opts.BundleGrace <= 0 {
		opts.BundleGrace = opts.CertTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &CA{opts: opts, log: opts.Log}
	var err error
	if opts.PluginDir != "" {
		c.plugin = true
		err = c.loadPlugin(opts.PluginDir)
	} else {
		err = c.loadSelfSigned()
	}
	if err != nil {
		return nil, err
	}
	c.rebuildPool()
	return c, nil
}

func (c *CA) dir() string {
	if c.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(c.opts.StateDir, "ca")
}

func (c *CA) loadPlugin(dir string) error {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("plug-in CA: %w", err)
		}
		return b, nil
	}
	certPEM, err := read(PluginCert)
	if err != nil {
		return err
	}
	keyPEM, err := read(PluginKey)
	if err != nil {
		return err
	}
	rootPEM, err := read(PluginRoot)
	if err != nil {
		return err
	}
	kc, err := parseKeyCert(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("plug-in CA %s/%s: %w", dir, PluginCert, err)
	}
	if !kc.cert.IsCA {
		return fmt.Errorf("plug-in CA %s/%s: not a CA certificate", dir, PluginCert)
	}
	roots, err := parseCerts(rootPEM)
	if err != nil || len(roots) == 0 {
		return fmt.Errorf("plug-in CA %s/%s: no certificates (%v)", dir, PluginRoot, err)
	}
	// cert-chain.pem is optional for a root used directly; when present it
	// is ca-cert plus intermediates, and may end with the root.
	var chain []*x509.Certificate
	if b, err := os.ReadFile(filepath.Join(dir, PluginChain)); err == nil {
		all, err := parseCerts(b)
		if err != nil {
			return fmt.Errorf("plug-in CA %s/%s: %w", dir, PluginChain, err)
		}
		for _, cc := range all {
			if cc.Equal(kc.cert) || isIn(cc, roots) {
				continue
			}
			chain = append(chain, cc)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("plug-in CA: %w", err)
	}
	// The signing certificate must chain to the roots.
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, cc := range chain {
		inter.AddCert(cc)
	}
	if _, err := kc.cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: c.opts.Now()}); err != nil {
		return fmt.Errorf("plug-in CA %s/%s does not chain to %s: %w", dir, PluginCert, PluginRoot, err)
	}
	c.signer, c.chain, c.bundle = kc, chain, roots
	if isIn(kc.cert, roots) {
		c.chain = nil
	} else {
		c.chain = append([]*x509.Certificate{kc.cert}, chain...)
	}
	return nil
}

func (c *CA) loadSelfSigned() error {
	dir := c.dir()
	if dir == "" {
		kc, err := c.newRoot()
		if err != nil {
			return err
		}
		c.signer, c.bundle = kc, []*x509.Certificate{kc.cert}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ca dir: %w", err)
	}
	certPEM, errC := os.ReadFile(filepath.Join(dir, rootCertFile))
	keyPEM, errK := os.ReadFile(filepath.Join(dir, rootKeyFile))
	switch {
	case errors.Is(errC, os.ErrNotExist) && errors.Is(errK, os.ErrNotExist):
		kc, err := c.newRoot()
		if err != nil {
			return err
		}
		if err := writeKeyCert(dir, rootCertFile, rootKeyFile, kc); err != nil {
			return err
		}
		c.log.Info("created a self-signed root CA", "dir", dir, "subject", kc.cert.Subject.String(), "notAfter", kc.cert.NotAfter)
		c.signer = kc
	case errC != nil:
		return fmt.Errorf("ca: %w", errC)
	case errK != nil:
		return fmt.Errorf("ca: %w", errK)
	default:
		kc, err := parseKeyCert(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("ca %s: %w", dir, err)
		}
		c.signer = kc
	}
	if b, err := os.ReadFile(filepath.Join(dir, rotationFile)); err == nil {
		if err := json.Unmarshal(b, &c.state); err != nil {
			return fmt.Errorf("ca %s: %w", filepath.Join(dir, rotationFile), err)
		}
	}
	if !c.state.PendingSince.IsZero() {
		certPEM, err1 := os.ReadFile(filepath.Join(dir, pendingCertFile))
		keyPEM, err2 := os.ReadFile(filepath.Join(dir, pendingKeyFile))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("ca: pending root: %w", err)
		}
		kc, err := parseKeyCert(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("ca: pending root: %w", err)
		}
		c.pending = kc
	}
	return c.rebuildBundle()
}

// rebuildBundle sets the bundle from the signer, the pending root and the
// retired roots. Caller holds mu (or owns c).
func (c *CA) rebuildBundle() error {
	bundle := []*x509.Certificate{c.signer.cert}
	if c.pending != nil {
		bundle = append(bundle, c.pending.cert)
	}
	for _, r := range c.state.Retired {
		certs, err := parseCerts([]byte(r.CertPEM))
		if err != nil {
			return fmt.Errorf("ca: retired root: %w", err)
		}
		bundle = append(bundle, certs...)
	}
	c.bundle = bundle
	return nil
}

func (c *CA) rebuildPool() {
	p := x509.NewCertPool()
	for _, r := range c.bundle {
		p.AddCert(r)
	}
	c.pool = p
}

func (c *CA) trustDomain() string {
	if c.opts.TrustDomain != nil {
		if td := c.opts.TrustDomain(); td != "" {
			return td
		}
	}
	return meshtls.DefaultTrustDomain
}

// newRoot generates a self-signed ECDSA P-256 root.
func (c *CA) newRoot() (*keyCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{c.trustDomain()}, CommonName: "Weft root CA " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(c.opts.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyCert{key: key, cert: cert}, nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Signed is a signed workload certificate.
type Signed struct {
	// Chain is the leaf followed by the intermediates (PEM, one
	// certificate per element), as IstioCertificateResponse.cert_chain
	// before its final root element.
	Chain []string
	// Bundle is the trust bundle (PEM, all roots), the last element of
	// cert_chain.
	Bundle string
	Cert   *x509.Certificate
}

// SignCSR signs a PEM (or DER) CSR for id. The CSR's subject and SANs are
// ignored: the certificate carries id, the caller's verified identity.
// ttl <= 0 means the default; more than MaxTTL is refused.
func (c *CA) SignCSR(csrPEM []byte, id meshtls.Identity, ttl time.Duration) (*Signed, error) {
	der := csrPEM
	if b, _ := pem.Decode(csrPEM); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("csr: PEM block %q, want CERTIFICATE REQUEST", b.Type)
		}
		der = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: signature: %w", err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if ttl <= 0 {
		ttl = c.opts.CertTTL
	}
	if ttl > c.opts.MaxTTL {
		return nil, fmt.Errorf("requested TTL %s exceeds the maximum %s", ttl, c.opts.MaxTTL)
	}
	if id.Namespace == "" || id.ServiceAccount == "" {
		return nil, errors.New("no identity to sign for")
	}
	if id.TrustDomain == "" {
		id.TrustDomain = c.trustDomain()
	}
	u, err := url.Parse(id.String())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return c.sign(tmpl, csr.PublicKey, ttl)
}

// sign fills validity and serial and signs with the current signer.
func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) (*Signed, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	c.mu.RLock()
	signer, chain, bundle := c.signer, c.chain, c.bundle
	c.mu.RUnlock()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(ttl)
	// A certificate never outlives its issuer.
	if tmpl.NotAfter.After(signer.cert.NotAfter) {
		tmpl.NotAfter = signer.cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer.cert, pub, signer.key)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	out := &Signed{Cert: cert, Chain: []string{string(encodeCert(cert.Raw))}}
	for _, cc := range chain {
		out.Chain = append(out.Chain, string(encodeCert(cc.Raw)))
	}
	out.Bundle = string(encodeCerts(bundle))
	return out, nil
}

func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s not accepted (P-256 or P-384)", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too short (at least 2048)", k.N.BitLen())
		}
	default:
		return fmt.Errorf("key type %T not accepted (ECDSA or RSA)", pub)
	}
	return nil
}

// ServingCert issues a certificate for the control plane itself (the TLS
// server on 15012): DNS and IP SANs, plus the control plane's SPIFFE
// identity so proxies could pin it. The key is generated here and never
// leaves the process.
func (c *CA) ServingCert(hosts []string, id meshtls.Identity, ttl time.Duration) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "weft control plane"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if !id.IsZero() {
		if id.TrustDomain == "" {
			id.TrustDomain = c.trustDomain()
		}
		u, err := url.Parse(id.String())
		if err != nil {
			return nil, err
		}
		tmpl.URIs = []*url.URL{u}
	}
	s, err := c.sign(tmpl, key.Public(), ttl)
	if err != nil {
		return nil, err
	}
	out := &tls.Certificate{PrivateKey: key, Leaf: s.Cert}
	for _, p := range s.Chain {
		b, _ := pem.Decode([]byte(p))
		out.Certificate = append(out.Certificate, b.Bytes)
	}
	return out, nil
}

// TrustBundle is the PEM of every root proxies must trust now (the signing
// root, a pending new root, retired roots whose certificates may still be
// in use).
func (c *CA) TrustBundle() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return encodeCerts(c.bundle)
}

// Pool is the trust bundle as a cert pool (verifying clients of 15012).
func (c *CA) Pool() *x509.CertPool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pool
}

// SigningCert is the certificate that signs now.
func (c *CA) SigningCert() *x509.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.signer.cert
}

// OnChange registers fn to be called (without locks held) after the trust
// bundle or the signing root changed.
func (c *CA) OnChange(fn func()) {
	c.mu.Lock()
	c.subs = append(c.subs, fn)
	c.mu.Unlock()
}

func (c *CA) notify() {
	c.mu.RLock()
	subs := append([]func(){}, c.subs...)
	c.mu.RUnlock()
	for _, fn := range subs {
		fn()
	}
}

// --- PEM helpers ---

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeCerts(cs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		b.Write(encodeCert(c.Raw))
	}
	return b.Bytes()
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func parseKeyCert(certPEM, keyPEM []byte) (*keyCert, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in PEM")
	}
	pair, err := tls.X509KeyPair(encodeCert(certs[0].Raw), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key does not match certificate: %w", err)
	}
	s, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", pair.PrivateKey)
	}
	return &keyCert{key: s, cert: certs[0]}, nil
}

func isIn(c *x509.Certificate, list []*x509.Certificate) bool {
	for _, o := range list {
		if o.Equal(c) {
			return true
		}
	}
	return false
}

// writeKeyCert writes a certificate and its key (mode 0600, atomically).
func writeKeyCert(dir, certName, keyName string, kc *keyCert) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(kc.key)
	if err != nil {
		return err
	}
	if err := statedir.WriteFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	return statedir.WriteFile(filepath.Join(dir, certName), encodeCert(kc.cert.Raw))
}
