// Package identity is weft-proxy's workload identity: it generates the
// proxy's private key (ECDSA P-256, kept in memory, never sent or logged),
// obtains a certificate from the control plane's CA with a CSR
// (Istio's IstioCertificateService, authenticated with a join token or the
// certificate it holds), renews it at half its lifetime and when the trust
// bundle changes, and serves it the way Envoy's SDS would: the secrets
// "default" (certificate chain and key) and "ROOTCA" (trust bundle) for the
// proxy's own listeners and clusters, and TLS configs for the xDS
// connection. Subscribers are told after every change; handshakes started
// after it use the new certificate while open connections continue.
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// SDS secret names, as Istio's.
const (
	SecretDefault = "default"
	SecretRootCA  = "ROOTCA"
)

// Options configure a Manager.
type Options struct {
	// CAAddress is the control plane's CA (host:port, its 15012).
	CAAddress string
	// RootCertFile holds the PEM roots that the CA's serving certificate
	// must chain to. Required: a proxy never trusts on first use.
	RootCertFile string
	// TokenFile holds the join token; read at every request, so it can be
	// replaced. Optional once a certificate is held (renewal with it).
	TokenFile string
	// ServerName is the name the CA's certificate must carry (default:
	// CAAddress's host; with several addresses, any of their hosts).
	ServerName string
	// TTL is the requested certificate lifetime (0: the CA's default).
	TTL time.Duration
	// Request performs a CSR (tests); default: gRPC to CAAddress.
	Request func(ctx context.Context, csrPEM []byte, token string) (chain []string, err error)
	Now     func() time.Time
	Log     *slog.Logger
}

// Cert is one issued certificate with its key and trust bundle. Immutable.
type Cert struct {
	TLS      tls.Certificate
	Leaf     *x509.Certificate
	Identity meshtls.Identity
	// ChainPEM is the leaf and intermediates; BundlePEM the roots.
	ChainPEM, BundlePEM []byte
	keyPEM              []byte
	Roots               *x509.CertPool // the bundle plus the configured roots
	Received            time.Time
	RenewAt             time.Time
}

// Manager holds the proxy's current certificate. Safe for concurrent use.
type Manager struct {
	opts    Options
	log     *slog.Logger
	anchors []byte // the configured roots (PEM)
	// serverNames: the CA's certificate must carry one of them.
	serverNames []string
	cur         atomic.Pointer[Cert]
	mu          sync.Mutex
	subs        []func()
	renewNow    chan struct{}
	rotations   atomic.Int64
}

// New checks the options and reads the configured roots.
func New(opts Options) (*Manager, error) {
	if opts.CAAddress == "" && opts.Request == nil {
		return nil, errors.New("identity: no CA address")
	}
	if opts.RootCertFile == "" {
		return nil, errors.New("identity: a root certificate file is required (the CA is never trusted on first use)")
	}
	anchors, err := os.ReadFile(opts.RootCertFile)
	if err != nil {
		return nil, fmt.Errorf("identity: root certificate: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(anchors) {
		return nil, fmt.Errorf("identity: %s holds no PEM certificate", opts.RootCertFile)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: opts, log: opts.Log, anchors: anchors, renewNow: make(chan struct{}, 1)}
	if opts.ServerName != "" {
		m.serverNames = []string{opts.ServerName}
	} else if addrs, err := xdsclient.SplitServers(opts.CAAddress); err == nil {
		// Each replica's certificate carries its own address (or the
		// shared Service name): any configured address is the CA.
		for _, a := range addrs {
			h, _, _ := net.SplitHostPort(a)
			m.serverNames = append(m.serverNames, h)
		}
	}
	if m.opts.Request == nil {
		m.opts.Request = m.grpcRequest
	}
	return m, nil
}

// Current returns the certificate held, nil before the first.
func (m *Manager) Current() *Cert { return m.cur.Load() }

// Rotations counts certificates obtained after the first.
func (m *Manager) Rotations() int64 { return m.rotations.Load() }

// OnChange registers fn, called (from the renewal goroutine, no locks
// held) after each new certificate.
func (m *Manager) OnChange(fn func()) {
	m.mu.Lock()
	m.subs = append(m.subs, fn)
	m.mu.Unlock()
}

// Fetch obtains a certificate now (a new key and CSR each time).
func (m *Manager) Fetch(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	token, err := m.token()
	if err != nil {
		return err
	}
	chain, err := m.opts.Request(ctx, csr, token)
	if err != nil {
		return fmt.Errorf("certificate request to %s: %w", m.opts.CAAddress, err)
	}
	c, err := m.build(key, chain)
	if err != nil {
		return fmt.Errorf("certificate from %s: %w", m.opts.CAAddress, err)
	}
	prev := m.cur.Swap(c)
	if prev != nil {
		m.rotations.Add(1)
	}
	rootsChanged := prev != nil && string(prev.BundlePEM) != string(c.BundlePEM)
	m.log.Info("workload certificate obtained", "identity", c.Identity.String(), "serial", c.Leaf.SerialNumber.Text(16),
		"notAfter", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "renewAt", c.RenewAt.UTC().Format(time.RFC3339), "rootsChanged", rootsChanged)
	m.mu.Lock()
	subs := append([]func(){}, m.subs...)
	m.mu.Unlock()
	for _, fn := range subs {
		fn()
	}
	return nil
}

func (m *Manager) token() (string, error) {
	if m.opts.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(m.opts.TokenFile)
	if err != nil {
		// Renewal works with the certificate alone.
		if m.cur.Load() != nil {
			return "", nil
		}
		return "", fmt.Errorf("join token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// build checks the CA's answer (Istio's cert_chain: leaf, intermediates,
// and last the trust bundle) against the key and the roots.
func (m *Manager) build(key *ecdsa.PrivateKey, chain []string) (*Cert, error) {
	if len(chain) < 2 {
		return nil, fmt.Errorf("cert_chain has %d elements, want the certificate and the roots", len(chain))
	}
	bundle := []byte(chain[len(chain)-1])
	var chainPEM []byte
	var certs []*x509.Certificate
	for _, p := range chain[:len(chain)-1] {
		rest := []byte(p)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			certs = append(certs, c)
			chainPEM = append(chainPEM, pem.EncodeToMemory(b)...)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in cert_chain")
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("the certificate is not for our key")
	}
	// The leaf must chain to the bundle it comes with: that bundle
	// becomes ROOTCA, what peers are checked against. (The bundle itself
	// is trusted because the CA's connection was verified.)
	bundlePool := x509.NewCertPool()
	if !bundlePool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("no roots in cert_chain")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	roots.AppendCertsFromPEM(m.anchors)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := m.opts.Now()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: bundlePool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the certificate does not verify: %w", err)
	}
	id, err := meshtls.CertIdentity(leaf)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &Cert{Leaf: leaf, Identity: id, ChainPEM: chainPEM, BundlePEM: bundle, Roots: roots, Received: now,
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	c.TLS = tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, cc := range certs {
		c.TLS.Certificate = append(c.TLS.Certificate, cc.Raw)
	}
	// Renew at half the remaining lifetime from receipt (not from
	// NotBefore, which the CA backdates), as Istio's agent does.
	c.RenewAt = now.Add(leaf.NotAfter.Sub(now) / 2)
	return c, nil
}

// Start obtains the first certificate, retrying with backoff until ctx
// ends; the proxy cannot reach xDS over mTLS without it.
func (m *Manager) Start(ctx context.Context) error {
	delay := 250 * time.Millisecond
	for {
		err := m.Fetch(ctx)
		if err == nil {
			return nil
		}
		m.log.Warn("no workload certificate yet; retrying", "err", err, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// Renew asks the renewal loop to obtain a new certificate now.
func (m *Manager) Renew() {
	select {
	case m.renewNow <- struct{}{}:
	default:
	}
}

// Run renews the certificate at half-life until ctx ends; failures retry
// with backoff while the current certificate keeps serving.
func (m *Manager) Run(ctx context.Context) {
	retry := time.Duration(0)
	for {
		c := m.cur.Load()
		wait := time.Second
		if c != nil {
			wait = max(c.RenewAt.Sub(m.opts.Now()), 0)
		}
		if retry > 0 {
			wait = retry
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.renewNow:
			t.Stop()
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := m.Fetch(fctx)
		cancel()
		if err == nil {
			retry = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		retry = max(min(retry*2, 30*time.Second), time.Second)
		// Jitter spreads proxies that failed together.
		retry += time.Duration(mrand.Int64N(int64(retry / 4)))
		m.log.Warn("certificate renewal failed; the current certificate keeps serving", "err", err, "retry", retry)
	}
}

// Secrets are the SDS secrets "default" and "ROOTCA" for the current
// certificate (nil before the first). The key is inline: these messages
// stay inside the proxy (admin dumps redact private keys).
func (m *Manager) Secrets() map[string]*tlsv3.Secret {
	c := m.cur.Load()
	if c == nil {
		return nil
	}
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	return map[string]*tlsv3.Secret{
		SecretDefault: {Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(c.ChainPEM), PrivateKey: inline(c.keyPEM)}}},
		SecretRootCA: {Name: SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(c.BundlePEM)}}},
	}
}

// SecretVersion is the secrets' version_info: when the certificate was
// received (RFC 3339), as Istio's agent reports it.
func (m *Manager) SecretVersion() string {
	if c := m.cur.Load(); c != nil {
		return c.Received.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// ClientTLS is the TLS config for connections to the control plane (xDS
// and the CA): the current certificate is presented (looked up per
// handshake, so a renewal applies to the next connection), and the
// server must chain to the configured roots or the current bundle and
// carry ServerName.
func (m *Manager) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := m.cur.Load(); c != nil {
				return &c.TLS, nil
			}
			return &tls.Certificate{}, nil // none yet: the CA accepts a token
		},
		// Verification is ours: the roots change with rotation.
		InsecureSkipVerify: true,
		VerifyConnection:   m.verifyServer,
	}
}

func (m *Manager) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("control plane presented no certificate")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.anchors)
	if c := m.cur.Load(); c != nil {
		roots = c.Roots
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	names := m.serverNames
	if len(names) == 0 {
		names = []string{""}
	}
	var err error
	for _, n := range names {
		_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: n,
			CurrentTime: m.opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("control plane certificate: %w", err)
}
