package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/xds"
	"github.com/weftmesh/weft/internal/meshtls"
)

// CAOptions configure the control plane's certificate authority.
type CAOptions struct {
	// PluginDir holds Istio's cacerts files (ca-cert.pem, ca-key.pem,
	// root-cert.pem, cert-chain.pem); empty: a self-signed root in the
	// state dir.
	PluginDir string
	// CertTTL is the workload certificate lifetime (default 24h).
	CertTTL time.Duration
	// BundleGrace: how long a new root is only distributed before it signs
	// (default CertTTL).
	BundleGrace time.Duration
	// ServingHosts are the DNS names and IPs in the serving certificate of
	// the secure port (default: localhost, 127.0.0.1, the host of
	// SecureAddress and the machine's host name).
	ServingHosts []string
	// RotateRoot starts a root rotation at start (none in progress).
	RotateRoot bool
	// Now is the CA's clock (tests).
	Now func() time.Time
	// Authenticators are tried after the built-in ones (client
	// certificate, join token), e.g. Kubernetes TokenReview.
	Authenticators []ca.Authenticator
}

// secure is the 15012 side: the CA and one TLS gRPC server for the CA API
// and xDS over mutual TLS.
type secure struct {
	s       *Server
	ca      *ca.CA
	tokens  *ca.Tokens // nil without a state dir
	svc     *ca.Service
	auths   []ca.Authenticator
	hosts   []string
	serving atomic.Pointer[tls.Certificate]
	renew   chan struct{}
	grpc    *grpc.Server
	lis     net.Listener
}

func (s *Server) newSecure() (*secure, error) {
	o := s.opts.CA
	sec := &secure{s: s, renew: make(chan struct{}, 1)}
	var err error
	sec.ca, err = ca.New(ca.Options{StateDir: s.opts.StateDir, PluginDir: o.PluginDir, TrustDomain: s.trustDomain,
		CertTTL: o.CertTTL, BundleGrace: o.BundleGrace, Now: o.Now, Log: s.log.With("component", "ca")})
	if err != nil {
		return nil, err
	}
	var revoked *ca.Revocations
	if s.opts.StateDir != "" {
		revoked = ca.NewRevocations(s.opts.StateDir)
	}
	sec.auths = []ca.Authenticator{ca.CertAuthenticator{TrustDomain: s.trustDomain, Revoked: revoked}}
	if s.opts.StateDir != "" {
		if sec.tokens, err = ca.LoadTokens(s.opts.StateDir, o.Now); err != nil {
			return nil, err
		}
		sec.auths = append(sec.auths, ca.TokenAuthenticator{Tokens: sec.tokens, Revoked: revoked})
	}
	sec.auths = append(sec.auths, o.Authenticators...)
	if s.opts.NewAuthenticators != nil {
		sec.auths = append(sec.auths, s.opts.NewAuthenticators(s.trustDomain)...)
	}
	sec.svc = ca.NewService(sec.ca, sec.auths, s.log.With("component", "ca"))
	if o.RotateRoot {
		if err := sec.ca.Rotate(); err != nil && !errors.Is(err, ca.ErrRotationInProgress) {
			return nil, fmt.Errorf("root rotation: %w", err)
		}
	}
	if s.opts.SecureAddress == "" {
		return sec, nil
	}
	sec.hosts = o.ServingHosts
	if len(sec.hosts) == 0 {
		sec.hosts = []string{"localhost", "127.0.0.1"}
		if h, _, err := net.SplitHostPort(s.opts.SecureAddress); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			sec.hosts = append(sec.hosts, h)
		}
		if h, err := os.Hostname(); err == nil && h != "" {
			sec.hosts = append(sec.hosts, h)
		}
	}
	if err := sec.issueServing(); err != nil {
		return nil, err
	}
	sec.ca.OnChange(func() {
		select {
		case sec.renew <- struct{}{}:
		default:
		}
	})
	if sec.lis, err = net.Listen("tcp", s.opts.SecureAddress); err != nil {
		return nil, fmt.Errorf("secure listener: %w", err)
	}
	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: sec.tlsConfig})
	sec.grpc = grpc.NewServer(append(grpcOptions(), grpc.Creds(creds), grpc.StreamInterceptor(sec.authStream))...)
	s.xds.Register(sec.grpc)
	sec.svc.Register(sec.grpc)
	return sec, nil
}

// tlsConfig is evaluated per handshake, so a renewed serving certificate
// and a changed trust bundle apply to new connections at once. Client
// certificates are optional here (a proxy's first CSR has none); xDS
// refuses streams whose caller proved no identity.
func (sec *secure) tlsConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*sec.serving.Load()},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    sec.ca.Pool(),
		NextProtos:   []string{"h2"},
	}, nil
}

func (sec *secure) issueServing() error {
	// Not the workload TTL: proxies renew their own certificates; this
	// one is renewed at half-life and whenever the roots change.
	ttl := max(sec.s.opts.CA.CertTTL, ca.DefaultCertTTL)
	cert, err := sec.ca.ServingCert(sec.hosts, meshtls.Identity{Namespace: "istio-system", ServiceAccount: "weft"}, ttl)
	if err != nil {
		return fmt.Errorf("control plane serving certificate: %w", err)
	}
	sec.serving.Store(cert)
	return nil
}

// adsPrefix is the gRPC service path of ADS.
const adsPrefix = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"

// authStream authenticates xDS callers on the secure port (client
// certificate, or a token) and hands their identity to the xDS server,
// which holds node metadata to it.
func (sec *secure) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, adsPrefix) {
		return handler(srv, ss)
	}
	ctx := ss.Context()
	id, err := ca.Authenticate(ctx, ca.CredentialFrom(ctx), sec.auths)
	if err != nil {
		sec.s.log.Warn("refusing xDS stream: no valid client certificate or token", "err", err)
		return status.Error(codes.Unauthenticated, "xDS on the secure port needs a client certificate issued by this mesh's CA (or a join token)")
	}
	if id.TrustDomain == "" {
		id.TrustDomain = sec.s.trustDomain()
	}
	return handler(srv, &identityStream{ServerStream: ss, ctx: xds.WithPeerIdentity(ctx, id)})
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// run serves the secure port and keeps the CA moving: root rotation steps
// and serving certificate renewal at half-life or when the roots change.
func (sec *secure) run(ctx context.Context, errc chan<- error) {
	if sec.grpc != nil {
		go func() { errc <- sec.grpc.Serve(sec.lis) }()
	}
	go func() {
		advance := time.NewTicker(30 * time.Second)
		defer advance.Stop()
		renew := time.NewTimer(sec.servingRenewIn())
		defer renew.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-advance.C:
				if _, err := sec.ca.Advance(); err != nil {
					sec.s.log.Error("root rotation step failed", "err", err)
				}
			case <-renew.C:
				sec.renewServing()
			case <-sec.renew:
				sec.renewServing()
			}
			renew.Reset(sec.servingRenewIn())
		}
	}()
}

// servingRenewIn is the time until the serving certificate's half-life
// (a retry delay once that has passed).
func (sec *secure) servingRenewIn() time.Duration {
	c := sec.serving.Load()
	if c == nil {
		return time.Hour
	}
	half := c.Leaf.NotBefore.Add(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore) / 2)
	return max(half.Sub(sec.now()), time.Second)
}

func (sec *secure) now() time.Time {
	if sec.s.opts.CA.Now != nil {
		return sec.s.opts.CA.Now()
	}
	return time.Now()
}

func (sec *secure) renewServing() {
	if sec.lis == nil {
		return
	}
	if err := sec.issueServing(); err != nil {
		sec.s.log.Error("renewing the serving certificate; the current one keeps serving", "err", err)
	}
}

func (sec *secure) close() {
	if sec == nil {
		return
	}
	if sec.grpc != nil {
		sec.grpc.Stop()
	} else if sec.lis != nil {
		sec.lis.Close()
	}
}

// trustDomain is MeshConfig trustDomain of the config being served.
func (s *Server) trustDomain() string {
	if s.xds != nil {
		if td := s.xds.Snapshot().Mesh.GetTrustDomain(); td != "" {
			return td
		}
	}
	return meshtls.DefaultTrustDomain
}

// CA returns the certificate authority.
func (s *Server) CA() *ca.CA { return s.sec.ca }

// Tokens returns the join token issuer (nil without a state dir).
func (s *Server) Tokens() *ca.Tokens { return s.sec.tokens }
