// Package xds serves translated configuration to proxies over ADS (state of
// the world and delta: go-control-plane's stream handling over watchCache,
// which shares encoded resources between proxies). It keeps, per connected
// proxy, the translated output (shared lists, see interner), the version of each resource type (a hash
// of its content, so unchanged types are not re-sent) and what the proxy
// ACKed or NACKed. Snapshot updates are debounced and only proxies whose
// output changed are pushed.
package xds

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/node"
)

// Types are the resource types Weft serves, in push order.
var Types = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

// ShortType names a type URL the way proxy-status shows it (CDS, EDS …).
func ShortType(typeURL string) string {
	switch typeURL {
	case resource.ClusterType:
		return "CDS"
	case resource.EndpointType:
		return "EDS"
	case resource.ListenerType:
		return "LDS"
	case resource.RouteType:
		return "RDS"
	case resource.SecretType:
		return "SDS"
	}
	return typeURL
}

// Options configure a Server. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// Debounce is how long Update waits for more changes (default 100ms);
	// MaxDelay caps the wait under a stream of changes (default 1s).
	Debounce time.Duration
	MaxDelay time.Duration
	// OnConnect and OnDisconnect are called (without locks held) when a
	// proxy's stream opens and when it ends; the control plane uses them
	// for auto-registration. gen numbers the streams: a newer stream for
	// the same node ID replaces the older, whose end is then not reported.
	OnConnect    func(id string, gen uint64, meta *node.Meta)
	OnDisconnect func(id string, gen uint64)
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Translate replaces translation (tests); the output's Check method,
	// when it has one, still gates publishing. By default each snapshot
	// gets a translate.Cache, which shares proxy-independent resources.
	Translate func(*model.Snapshot, *model.Proxy) *translate.Output
}

// Server is the ADS server. Methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	watches *watchCache // what go-control-plane's server sends
	grpcSrv serverv3.Server
	metrics *Metrics
	intern  *interner

	mu       sync.Mutex
	snap     *model.Snapshot
	gen      *generation            // snap as served: translation cache and hashes
	proxies  map[string]*proxyState // by node id
	streams  map[streamKey]string   // stream → node id
	handles  map[streamKey]*streamHandle
	detached map[streamKey]bool             // replaced by a newer stream, not yet ended
	idents   map[streamKey]meshtls.Identity // stream → verified caller identity
	nextGen  uint64
	pending  *model.Snapshot // set by Update, not yet pushed
	changeAt time.Time       // first Update since the last push
	timer    *time.Timer
	deadline time.Time
	pushMu   sync.Mutex // one push at a time, in order
	closed   bool
}

type streamKey struct {
	delta bool
	id    int64
}

// New returns a Server serving snap (nil means an empty snapshot) until
// the first Update.
func New(snap *model.Snapshot, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if snap == nil {
		snap = emptySnapshot()
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		metrics:  newMetrics(),
		intern:   newInterner(),
		snap:     snap,
		gen:      newGeneration(snap, opts.Translate),
		proxies:  map[string]*proxyState{},
		streams:  map[streamKey]string{},
		handles:  map[streamKey]*streamHandle{},
		detached: map[streamKey]bool{},
		idents:   map[streamKey]meshtls.Identity{},
	}
	// As go-control-plane's cache in non-ADS mode, a request naming a
	// resource we do not have is answered with what exists (gRPC clients
	// then see "does not exist") instead of never being answered.
	s.watches = newWatchCache()
	// Ordered ADS: the state-of-the-world streams send responses in the
	// order the cache answers them (watchCache.set: clusters first), as
	// delta streams do; without it each stream picked a ready type at
	// random, so routes could reach a proxy before their new cluster.
	s.grpcSrv = serverv3.NewServer(context.Background(), s.watches, callbacks{s}, sotw.WithOrderedADS())
	return s
}

func emptySnapshot() *model.Snapshot {
	snap, _ := registry.Build(nil, nil) // cannot fail without MeshConfigs
	return snap
}

// Register adds the ADS service to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, ads{s})
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Snapshot returns the snapshot currently served.
func (s *Server) Snapshot() *model.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Update schedules snap to be pushed after the debounce delay. Later
// Updates within the delay replace it; the push happens at most MaxDelay
// after the first one.
func (s *Server) Update(snap *model.Snapshot) {
	if snap == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.opts.Now()
	s.pending = snap
	if s.timer == nil {
		s.changeAt = now
		s.deadline = now.Add(s.opts.MaxDelay)
		s.timer = time.AfterFunc(s.opts.Debounce, s.flush)
		return
	}
	wait := s.opts.Debounce
	if left := s.deadline.Sub(now); left < wait {
		wait = max(left, 0)
	}
	s.timer.Reset(wait)
}

// Flush pushes a pending Update now (tests, shutdown).
func (s *Server) Flush() { s.flush() }

func (s *Server) flush() {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	snap, changeAt := s.pending, s.changeAt
	s.pending = nil
	if snap == nil {
		s.mu.Unlock()
		return
	}
	g := newGeneration(snap, s.opts.Translate)
	s.snap, s.gen = snap, g
	ps := make([]*proxyState, 0, len(s.proxies))
	for _, p := range s.proxies {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	s.pushAll(g, ps, changeAt)
}

// pushAll recomputes every proxy in parallel; each proxy gets a new cache
// snapshot only when one of its type versions changed.
func (s *Server) pushAll(g *generation, ps []*proxyState, changeAt time.Time) {
	work := make(chan *proxyState)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(ps), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				s.push(g, p, changeAt)
			}
		}()
	}
	for _, p := range ps {
		work <- p
	}
	close(work)
	wg.Wait()
}

// push translates g's snapshot for p and publishes it if it changed and
// passes the consistency check.
func (s *Server) push(g *generation, p *proxyState, changeAt time.Time) {
	// A lifecycle change replaces p.meta under s.mu while pushes run.
	s.mu.Lock()
	meta := p.meta
	s.mu.Unlock()
	svcs := g.services(meta)
	proxy := &model.Proxy{Meta: registry.WithLocality(meta, svcs), ID: p.id, Services: svcs}
	if id, err := meshtls.ParseSPIFFE(p.identity); p.identity != "" && err == nil {
		proxy.Identity = &id
	}
	out, err := build(g.translate, proxy)
	var set *typeSet
	var vs map[string]string
	if err == nil {
		if set, err = g.versions(out); err == nil {
			vs = set.versions
		}
	}
	if err == nil {
		// An output identical to the published one was checked already.
		s.mu.Lock()
		same := p.checkErr == "" && len(p.versions) == len(Types)
		for _, t := range Types {
			same = same && p.versions[t] == vs[t]
		}
		s.mu.Unlock()
		if same {
			return
		}
		err = g.check(out, vs)
	}
	if err != nil {
		s.mu.Lock()
		first := p.checkErr != err.Error()
		p.checkErr = err.Error()
		s.mu.Unlock()
		s.metrics.checkFailures.Add(1)
		if first {
			s.log.Error("not publishing config that fails the consistency check", "proxy", p.id, "err", err)
		}
		return
	}
	// Outside the lock: this walks the proxy's gateways and clusters.
	probs := translate.CredentialProblems(g.snap, proxy)
	s.mu.Lock()
	if s.proxies[p.id] != p || p.pending {
		s.mu.Unlock()
		return // disconnected or replaced meanwhile, or not yet published
	}
	p.checkErr = ""
	var changed []string
	for _, t := range Types {
		if p.versions[t] != vs[t] {
			changed = append(changed, t)
		}
	}
	if len(changed) == 0 {
		s.mu.Unlock()
		return
	}
	old := p.shared
	s.noteCredentials(p, probs)
	p.shared = s.intern.share(set)
	p.lists = set.published()
	for _, t := range changed {
		p.versions[t] = vs[t]
		p.changeAt[t] = changeAt
	}
	cs := set.snapshot()
	// Under s.mu, so a concurrent disconnect's ClearSnapshot comes after.
	s.watches.set(p.id, cs)
	s.mu.Unlock()
	s.intern.release(old)
}

// noteCredentials logs, once per change, the credentials a proxy's new
// config names but cannot be served (a Gateway server without its Secret
// loses only its own chain, silently on the wire); weft x describe shows
// them too. Called with s.mu held, when the proxy's config changed.
func (s *Server) noteCredentials(p *proxyState, probs []string) {
	if slices.Equal(probs, p.credProblems) {
		return
	}
	for _, m := range probs {
		if !slices.Contains(p.credProblems, m) {
			s.log.Warn("credential unavailable", "proxy", p.id, "problem", m)
		}
	}
	p.credProblems = probs
}

// build runs translation, turning a panic (a translation bug) into an
// error so one bad proxy cannot take the control plane down.
func build(fn func(*model.Proxy) *translate.Output, p *model.Proxy) (out *translate.Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("translate panicked: %v", r)
		}
	}()
	out = fn(p)
	if out == nil {
		return nil, fmt.Errorf("translate returned no output")
	}
	return out, nil
}

// check runs the translator's consistency check when it has one.
func check(out *translate.Output) error {
	if c, ok := any(out).(interface{ Check() error }); ok {
		return c.Check()
	}
	return nil
}

// Close stops pending pushes. Streams end when the gRPC server stops.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}
