// Package server composes the standalone control plane: the watched config
// directory (store), auto-registered workloads (registry), the ADS server
// (xds) and the monitoring HTTP API (apply/get/delete, status, proxy
// status and config dumps, metrics). It is the one place that wires them.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/internal/controlplane/apiauth"
	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/jwks"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/store"
	"github.com/weftmesh/weft/internal/controlplane/xds"
	"github.com/weftmesh/weft/internal/node"
)

// Options configure the control plane.
type Options struct {
	ConfigDir string
	// StateDir holds what the control plane creates and must keep private
	// (CA keys, the admin token, persisted registrations): mode 0700, never
	// inside the watched config dir. Default: "<ConfigDir>.state", beside it.
	StateDir string
	// SecureAddress serves xDS over mutual TLS and Istio's CA API
	// (IstioCertificateService) on one gRPC server, as istiod's 15012.
	// Empty: not served.
	SecureAddress string
	// XDSAddress serves plaintext xDS, which trusts what proxies claim
	// about themselves: for development on loopback only. Empty: off.
	XDSAddress        string
	MonitoringAddress string // default 127.0.0.1:15014
	// CA configures the certificate authority. Its StateDir is StateDir.
	CA CAOptions
	// Grace keeps an auto-registered workload after its proxy went, so a
	// quick reconnect does not flap endpoints (default 5s; <0 means 0).
	Grace time.Duration
	// RestoreGrace keeps registrations restored from StateDir at start
	// until their proxies reconnect (default DefaultRestoreGrace).
	RestoreGrace time.Duration
	// Debounce for config-dir events and xDS pushes (default 100ms).
	Debounce time.Duration
	// AllowedHosts are host names (besides IP literals, localhost and the
	// monitoring listen host) accepted in the Host header of API requests.
	AllowedHosts []string
	// AdminToken, when set, is used instead of the one kept in StateDir.
	AdminToken string
	// TokenDir is where the admin token is published for local clients
	// ("" = apiauth.DefaultDir(), "-" = not published).
	TokenDir string
	Logger   *slog.Logger
	// NewSource, when set, replaces the config directory (Kubernetes
	// mode): it returns a synced source that calls onChange on changes.
	NewSource func(onChange func()) (store.Source, error)
	// NewAuthenticators adds CA authenticators (Kubernetes mode: the
	// TokenReview of service-account tokens), given the mesh trust domain.
	NewAuthenticators func(trustDomain func() string) []ca.Authenticator
	// Features are the feature flags translation follows.
	Features model.Features
}

// Server is a running control plane.
type Server struct {
	opts  Options
	log   *slog.Logger
	store *store.Dir // nil when config comes from NewSource
	src   store.Source
	auto  *registry.Auto
	xds   *xds.Server
	grpc  *grpc.Server // plaintext xDS (dev); nil when off
	http  *http.Server
	sec   *secure

	xdsLis, monLis net.Listener

	jwks *jwks.Fetcher // RequestAuthentication jwksUri key sets

	kick  chan struct{}   // asks the rebuild loop for a new snapshot
	gen   uint64          // snapshots built; owned by the rebuild loop
	last  *model.Snapshot // the last snapshot handed to xds; owned by the rebuild loop
	saved []byte          // registrations last written to StateDir; owned by the rebuild loop

	token     string   // the admin token
	published []string // discovery files holding it
	patterns  []string // every registered HTTP route

	mu       sync.Mutex
	buildErr string // last registry.Build failure, shown in status
}

// New loads the config directory and binds both listeners; Run serves.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.XDSAddress == "" && opts.SecureAddress == "" {
		return nil, errors.New("no xDS address: set the secure address (15012) or, for development, the plaintext one")
	}
	if opts.MonitoringAddress == "" {
		opts.MonitoringAddress = "127.0.0.1:15014"
	}
	if opts.Grace == 0 {
		opts.Grace = registry.DefaultGrace
	}
	if opts.Grace < 0 {
		opts.Grace = 0
	}
	if opts.RestoreGrace <= 0 {
		opts.RestoreGrace = DefaultRestoreGrace
	}
	if opts.StateDir == "" && opts.ConfigDir != "" {
		opts.StateDir = DefaultStateDir(opts.ConfigDir)
	}
	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		if err := os.Chmod(opts.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	s := &Server{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
	var err error
	if opts.NewSource != nil {
		if s.src, err = opts.NewSource(s.changed); err != nil {
			return nil, err
		}
	} else {
		s.store, err = store.Open(opts.ConfigDir, store.Options{Logger: s.log.With("component", "store"), Debounce: opts.Debounce, OnChange: s.changed})
		if err != nil {
			return nil, err
		}
		s.src = s.store
		for _, st := range s.store.Status() {
			for _, e := range st.Errors {
				s.log.Error("config file rejected", "file", st.File, "error", e)
			}
		}
	}
	s.auto = registry.NewAuto(opts.Grace, s.changed)
	if opts.StateDir != "" {
		restored, err := loadRegistrations(opts.StateDir)
		if err != nil {
			s.log.Error("restoring registrations; starting without them", "err", err)
		}
		if len(restored) > 0 {
			s.auto.Restore(restored, opts.RestoreGrace)
			s.log.Info("restored registrations until their proxies reconnect", "workloads", len(restored), "grace", opts.RestoreGrace)
		}
	}
	s.jwks = jwks.New(jwks.Options{Log: s.log.With("component", "jwks"), OnChange: s.changed})
	snap, err := registry.Build(s.src.Resources(), s.auto.Workloads())
	if err == nil {
		snap.Features = opts.Features
		s.addJWKS(snap)
	}
	if err != nil {
		s.log.Error("building the service registry", "err", err)
		s.buildErr = err.Error()
		snap = nil
	}
	s.last = snap
	s.xds = xds.New(snap, xds.Options{
		Logger:   s.log.With("component", "xds"),
		Debounce: opts.Debounce,
		OnConnect: func(id string, gen uint64, m *node.Meta) {
			s.auto.Connect(id, gen, registry.FromMeta(m), m.Lifecycle.Serving())
		},
		OnDisconnect: s.auto.Disconnect,
	})
	if s.sec, err = s.newSecure(); err != nil {
		return nil, err
	}
	if opts.XDSAddress != "" {
		if s.xdsLis, err = net.Listen("tcp", opts.XDSAddress); err != nil {
			s.sec.close()
			return nil, fmt.Errorf("xds listener: %w", err)
		}
		if ap, err := netip.ParseAddrPort(s.xdsLis.Addr().String()); err != nil || !ap.Addr().IsLoopback() {
			s.log.Warn("plaintext xDS is served beyond loopback: any process that reaches it can claim any identity", "address", s.XDSAddr())
		}
	}
	if s.monLis, err = net.Listen("tcp", opts.MonitoringAddress); err != nil {
		s.sec.close()
		if s.xdsLis != nil {
			s.xdsLis.Close()
		}
		return nil, fmt.Errorf("monitoring listener: %w", err)
	}
	if s.xdsLis != nil {
		s.grpc = grpc.NewServer(grpcOptions()...)
		s.xds.Register(s.grpc)
	}
	if err := s.setupToken(); err != nil {
		s.sec.close()
		if s.xdsLis != nil {
			s.xdsLis.Close()
		}
		s.monLis.Close()
		return nil, err
	}
	if s.opts.StateDir != "" && s.opts.AdminToken == "" {
		s.log.Info("admin token for API writes and Secret reads", "file", filepath.Join(s.opts.StateDir, apiauth.StateFile))
	}
	s.http = &http.Server{Handler: s.guard(s.sourceRoutes(s.routes())), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// setupToken loads or creates the admin token and publishes it for local
// clients under the bound monitoring address.
func (s *Server) setupToken() error {
	s.token = s.opts.AdminToken
	if s.token == "" {
		if s.opts.StateDir != "" {
			tok, err := apiauth.LoadOrCreate(s.opts.StateDir)
			if err != nil {
				return err
			}
			s.token = tok
		} else {
			s.token = apiauth.New()
		}
	}
	dir := s.opts.TokenDir
	if dir == "-" {
		return nil
	}
	if dir == "" {
		d, err := apiauth.DefaultDir()
		if err != nil {
			s.log.Warn("admin token not published for local clients; give them --token-file", "err", err)
			return nil
		}
		dir = d
	}
	files, err := apiauth.Publish(dir, s.MonitoringAddr(), s.token)
	s.published = files
	if err != nil {
		s.log.Warn("admin token not published for local clients; give them --token-file", "err", err)
	}
	return nil
}

// AdminToken is the credential API writes and Secret reads need.
func (s *Server) AdminToken() string { return s.token }

// XDSAddr, SecureAddr and MonitoringAddr return the bound addresses ("" for
// a listener that is off).
func (s *Server) XDSAddr() string {
	if s.xdsLis == nil {
		return ""
	}
	return s.xdsLis.Addr().String()
}
func (s *Server) SecureAddr() string {
	if s.sec.lis == nil {
		return ""
	}
	return s.sec.lis.Addr().String()
}
func (s *Server) MonitoringAddr() string { return s.monLis.Addr().String() }

// grpcOptions are the xDS servers' options: xds.GRPCOptions, and keepalive pings idle proxies so
// a vanished one (no FIN) is noticed and its workload deregistered, and
// clients' own keepalives are accepted.
func grpcOptions() []grpc.ServerOption {
	return append(xds.GRPCOptions(),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
}

// XDS returns the ADS server (status, dumps).
func (s *Server) XDS() *xds.Server { return s.xds }

// Store returns the config directory (nil in Kubernetes mode).
func (s *Server) Store() *store.Dir { return s.store }

func (s *Server) changed() {
	select {
	case s.kick <- struct{}{}:
	default: // a rebuild is already pending; it will see this change
	}
}

// rebuild turns the current config and workloads into a snapshot for
// the xDS server (which debounces the push).
func (s *Server) rebuild() {
	s.saveRegistrations()
	snap, err := registry.Build(s.src.Resources(), s.auto.Workloads())
	s.mu.Lock()
	if err != nil {
		if s.buildErr != err.Error() {
			s.log.Error("building the service registry; previous snapshot keeps serving", "err", err)
		}
		s.buildErr = err.Error()
		s.mu.Unlock()
		return
	}
	s.buildErr = ""
	s.mu.Unlock()
	snap.Features = s.opts.Features
	s.addJWKS(snap)
	if sameSnapshot(s.last, snap) {
		return
	}
	s.last = snap
	s.gen++
	snap.Version = fmt.Sprint(s.gen)
	s.xds.Update(snap)
}

// addJWKS puts the fetched key sets of the snapshot's jwksUris in it (the
// fetcher starts on new URIs and kicks a rebuild when they arrive).
func (s *Server) addJWKS(snap *model.Snapshot) {
	var uris []string
	for _, ra := range snap.RequestAuthentications {
		for _, r := range ra.Spec.GetJwtRules() {
			if r.GetJwksUri() != "" && r.GetJwks() == "" {
				uris = append(uris, r.GetJwksUri())
			}
		}
	}
	snap.JWKS = s.jwks.Keys(uris)
}

// JWKS returns the key set fetcher (status).
func (s *Server) JWKS() *jwks.Fetcher { return s.jwks }

// Run serves until ctx ends, then stops everything.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	if s.grpc != nil {
		go func() { errc <- s.grpc.Serve(s.xdsLis) }()
	}
	go func() { errc <- s.http.Serve(s.monLis) }()
	go func() { errc <- s.src.Watch(ctx) }()
	go s.jwks.Run(ctx)
	s.sec.run(ctx, errc)
	s.log.Info("control plane serving", "source", s.sourceName(), "secure", s.SecureAddr(), "xds", s.XDSAddr(), "monitoring", s.MonitoringAddr())
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-s.kick:
			s.rebuild()
		case err = <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				break loop
			}
			err = nil
		}
	}
	cancel()
	s.xds.Close()
	shutdown, done := context.WithTimeout(context.Background(), 2*time.Second)
	defer done()
	s.http.Shutdown(shutdown)
	// xDS streams never end on their own; proxies keep their config.
	if s.grpc != nil {
		s.grpc.Stop()
	}
	s.sec.close()
	apiauth.Unpublish(s.published, s.token)
	return err
}

// DefaultStateDir is the state directory beside a config dir:
// /srv/mesh -> /srv/mesh.state. Beside, not inside: the config dir is
// watched and often a git checkout, and state holds private keys.
func DefaultStateDir(configDir string) string {
	return filepath.Clean(configDir) + ".state"
}
