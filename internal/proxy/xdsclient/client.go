// Package xdsclient is weft-proxy's ADS client. It subscribes to listeners
// and clusters (wildcard), then to the routes, endpoints and secrets they
// reference; hands every update, as a complete Resources, to a Handler that
// compiles it; ACKs what compiles and NACKs what does not with the error; and
// reconnects with jittered exponential backoff while the last good config
// keeps serving. It speaks delta xDS and falls back to state-of-the-world
// when the server answers Unimplemented.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	grpcstatus "google.golang.org/grpc/status"
)

// Handler compiles and applies a complete config. It is called from one
// goroutine at a time. A non-nil error rejects the update (NACK) and the
// previous config must keep serving; the error should name the resource and
// field.
type Handler interface {
	Apply(typeURL string, r *Resources) error
}

// Retainer is optionally implemented by a Handler whose serving config
// still uses resources the received config no longer references (the
// previous version of a warming listener); those are not dropped.
type Retainer interface {
	Retained() Refs
}

// Options configures a Client.
type Options struct {
	// Server is the ADS server: host:port, or several replicas
	// host:port,host:port (see Dial).
	Server  string
	Node    *corev3.Node
	Handler Handler
	Log     *slog.Logger
	// DialOptions replace the default (plaintext) credentials.
	DialOptions []grpc.DialOption
	// BackoffMin and BackoffMax bound the reconnect delay (defaults 250ms, 15s).
	BackoffMin, BackoffMax time.Duration
	// Jitter returns a value in [0,1) (default math/rand/v2).
	Jitter func() float64
	// SotW skips the delta attempt.
	SotW bool
	// Local, when set, provides secrets the proxy makes itself (its
	// identity's "default" and "ROOTCA"): they are part of every config
	// handed to the Handler, never requested from the server, and a server
	// resource of the same name does not replace them. Call UpdateLocal
	// after they change.
	Local LocalSecrets
}

// LocalSecrets provides the proxy's own SDS secrets by name.
type LocalSecrets interface {
	Secrets() map[string]*tlsv3.Secret
	// SecretVersion is their version_info (Istio's agent uses the time
	// the certificate was issued).
	SecretVersion() string
}

// TypeStatus is what the client last did for one type.
type TypeStatus struct {
	Version   string // last accepted version
	Nonce     string // last response nonce
	LastNACK  string // error of the last rejected response ("" if the last was ACKed)
	Responses int
}

// Status is a snapshot of the client's state, for admin and tests.
type Status struct {
	Connected bool
	Delta     bool
	Connects  int
	Complete  bool
	Types     map[string]TypeStatus
}

// Client is an ADS client. Create with New, then Run.
type Client struct {
	opts  Options
	log   *slog.Logger
	ready chan struct{}
	// applyMu serializes calls into the Handler (xDS updates and local
	// secret updates).
	applyMu sync.Mutex

	mu       sync.Mutex
	cur      *Resources
	status   Status
	gotTypes map[string]bool              // LDS/CDS received at least once
	versions map[string]map[string]string // delta per-resource versions
	sotw     bool
	node     *corev3.Node // sent on each new stream; SetNode replaces it
	stream   transport    // the open stream, nil between sessions
}

// New creates a client; nothing happens until Run.
func New(opts Options) *Client {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 250 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 15 * time.Second
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	cur := NewResources()
	if opts.Local != nil {
		cur.setLocal(opts.Local.Secrets(), opts.Local.SecretVersion())
	}
	return &Client{
		opts:     opts,
		log:      opts.Log.With("xds", opts.Server),
		ready:    make(chan struct{}),
		cur:      cur,
		status:   Status{Types: map[string]TypeStatus{}},
		gotTypes: map[string]bool{},
		versions: map[string]map[string]string{},
		sotw:     opts.SotW,
		node:     opts.Node,
	}
}

// SetNode replaces the node the client announces (e.g. its lifecycle
// metadata changed): it is re-sent on the open stream at once and used by
// later streams.
func (c *Client) SetNode(n *corev3.Node) error {
	c.mu.Lock()
	c.node = n
	t := c.stream
	c.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.announce(n)
}

// Ready is closed once the first complete config (listeners, clusters and
// everything they reference) has been applied.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Resources returns the current accepted config (read-only).
func (c *Client) Resources() *Resources {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Status returns a copy of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Types = map[string]TypeStatus{}
	for k, v := range c.status.Types {
		s.Types[k] = v
	}
	return s
}

// Run connects and serves until ctx ends, reconnecting on failure.
func (c *Client) Run(ctx context.Context) error {
	dial := c.opts.DialOptions
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	dial = append([]grpc.DialOption{
		// A control plane that vanishes without a reset (host gone, netns
		// torn down) is noticed within ~40s and the client reconnects.
		// Weft's server permits pings every 10s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// A large mesh's first response can exceed gRPC's 4 MiB default.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20)),
		// The loop below is the only reconnect backoff: each session dials
		// a new channel, whose first attempt is immediate. gRPC's own
		// backoff (up to 120 s by default) would otherwise stack on it and
		// keep failing with a stale error after the server is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: c.opts.BackoffMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: c.opts.BackoffMax},
			MinConnectTimeout: 10 * time.Second,
		}),
	}, dial...)
	// A bad target is an error now, not a reason to retry forever.
	conn, err := Dial(c.opts.Server, dial...)
	if err != nil {
		return fmt.Errorf("xds client for %s: %w", c.opts.Server, err)
	}
	conn.Close()
	delay := c.opts.BackoffMin
	for {
		progressed, err := c.dialSession(ctx, dial)
		c.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			delay = c.opts.BackoffMin
		}
		c.log.Warn("xds stream ended; retrying", "err", err, "delay", delay)
		// Full jitter in [delay/2, delay) keeps proxies from reconnecting in lockstep.
		wait := delay/2 + time.Duration(c.opts.Jitter()*float64(delay/2))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, c.opts.BackoffMax)
	}
}

// dialSession runs one session on a channel of its own.
func (c *Client) dialSession(ctx context.Context, dial []grpc.DialOption) (bool, error) {
	conn, err := Dial(c.opts.Server, dial...)
	if err != nil {
		return false, fmt.Errorf("xds client for %s: %w", c.opts.Server, err)
	}
	defer conn.Close()
	return c.session(ctx, discoveryv3.NewAggregatedDiscoveryServiceClient(conn))
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.status.Connected = v
	if v {
		c.status.Connects++
	}
	c.mu.Unlock()
}

// update is one response in protocol-neutral form.
type update struct {
	typeURL string
	nonce   string
	version string
	full    bool // SotW: the response replaces the whole set of this type
	res     []namedAny
	removed []string
}

// transport is one ADS stream, delta or SotW.
type transport interface {
	// subscribe sends the current names for a type (wildcard for LDS/CDS).
	subscribe(typeURL string, names map[string]bool) error
	ack(u *update, errDetail error) error
	recv() (*update, error)
	// announce re-sends the node; safe to call from another goroutine.
	announce(n *corev3.Node) error
}

// session runs one stream; progressed reports whether any response arrived.
func (c *Client) session(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	useSotW, n := c.sotw, c.node
	c.mu.Unlock()
	var t transport
	if useSotW {
		s, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			return false, err
		}
		t = &sotwStream{s: s, node: n, last: map[string]*discoveryv3.DiscoveryRequest{}}
	} else {
		s, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			return false, err
		}
		c.mu.Lock()
		init := map[string]map[string]string{}
		for k, v := range c.versions {
			init[k] = v
		}
		c.mu.Unlock()
		t = &deltaStream{s: s, node: n, initial: init, subscribed: map[string]map[string]bool{}}
	}
	c.mu.Lock()
	c.status.Delta = !useSotW
	c.stream = t
	// A SetNode that raced the stream's creation is not lost.
	if c.node != n {
		n = c.node
		c.mu.Unlock()
		t.announce(n)
		c.mu.Lock()
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.stream = nil
		c.mu.Unlock()
	}()
	// Subscribe in ADS order: wildcard types, plus whatever the last good
	// config references, so a reconnect resumes every subscription.
	refs := c.remote(c.Resources().References())
	for _, typ := range Types {
		if err := t.subscribe(typ, refs.of(typ)); err != nil {
			return false, err
		}
	}
	c.setConnected(true)
	for {
		u, err := t.recv()
		if err != nil {
			if !useSotW && !progressed && grpcstatus.Code(err) == codes.Unimplemented {
				c.log.Info("server does not support delta xDS; using state of the world")
				c.mu.Lock()
				c.sotw = true
				c.mu.Unlock()
				return true, err
			}
			return progressed, err
		}
		progressed = true
		applyErr := c.handle(u)
		if err := t.ack(u, applyErr); err != nil {
			return progressed, err
		}
		if applyErr != nil {
			continue
		}
		refs := c.remote(c.Resources().References())
		for _, typ := range []string{SecretType, EndpointType, RouteType} {
			if err := t.subscribe(typ, refs.of(typ)); err != nil {
				return progressed, err
			}
		}
	}
}

// handle decodes and applies one update; the returned error is the NACK.
func (c *Client) handle(u *update) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.mu.Lock()
	cand := c.cur.clone()
	c.mu.Unlock()
	if u.full {
		cand.reset(u.typeURL)
	}
	local := c.localSecrets()
	var errs []error
	newVersions := map[string]string{}
	for _, r := range u.res {
		name, err := cand.put(u.typeURL, r.any, r.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		newVersions[name] = r.version
	}
	for _, n := range u.removed {
		cand.remove(u.typeURL, n)
	}
	cand.setLocal(local, c.localVersion())
	// Routes, endpoints and secrets nothing references any more are
	// dropped, as Envoy drops unsubscribed resources.
	var keep Refs
	if rt, ok := c.opts.Handler.(Retainer); ok {
		keep = rt.Retained()
	}
	if len(local) > 0 {
		secrets := map[string]bool{}
		for n := range keep.Secrets {
			secrets[n] = true
		}
		for n := range local {
			secrets[n] = true
		}
		keep.Secrets = secrets
	}
	pruned := cand.prune(keep)
	err := errors.Join(errs...)
	if err == nil {
		cand.Versions[u.typeURL] = u.version
		err = c.apply(u.typeURL, cand)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.status.Types[u.typeURL]
	ts.Nonce = u.nonce
	ts.Responses++
	if err != nil {
		ts.LastNACK = err.Error()
		c.status.Types[u.typeURL] = ts
		c.log.Error("rejected xds update", "type", u.typeURL, "version", u.version, "err", err)
		return err
	}
	ts.LastNACK = ""
	ts.Version = u.version
	c.status.Types[u.typeURL] = ts
	c.cur = cand
	vs := c.versions[u.typeURL]
	if vs == nil || u.full {
		vs = map[string]string{}
		c.versions[u.typeURL] = vs
	}
	for n, v := range newVersions {
		vs[n] = v
	}
	for _, n := range u.removed {
		delete(vs, n)
	}
	for typ, names := range pruned {
		for _, n := range names {
			delete(c.versions[typ], n)
		}
	}
	if wildcard(u.typeURL) {
		c.gotTypes[u.typeURL] = true
	}
	c.log.Debug("applied xds update", "type", u.typeURL, "version", u.version, "resources", len(u.res), "removed", len(u.removed))
	if !c.status.Complete && c.gotTypes[ListenerType] && c.gotTypes[ClusterType] && len(c.cur.Missing()) == 0 {
		c.status.Complete = true
		close(c.ready)
		c.log.Info("first complete config applied")
	}
	return nil
}

// apply calls the handler; a panic while compiling hostile or unexpected
// config becomes a NACK instead of a crash.
func (c *Client) apply(typeURL string, r *Resources) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic while applying xds update", "type", typeURL, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error applying %s: %v", typeURL, p)
		}
	}()
	return c.opts.Handler.Apply(typeURL, r)
}

func errorDetail(err error) *status.Status {
	if err == nil {
		return nil
	}
	return &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *Client) localSecrets() map[string]*tlsv3.Secret {
	if c.opts.Local == nil {
		return nil
	}
	return c.opts.Local.Secrets()
}

func (c *Client) localVersion() string {
	if c.opts.Local == nil {
		return ""
	}
	return c.opts.Local.SecretVersion()
}

// remote drops the local secrets from what is subscribed from the server.
func (c *Client) remote(r Refs) Refs {
	local := c.localSecrets()
	if len(local) == 0 {
		return r
	}
	secrets := map[string]bool{}
	for n := range r.Secrets {
		if local[n] == nil {
			secrets[n] = true
		}
	}
	r.Secrets = secrets
	return r
}

// UpdateLocal hands the current config, with the local secrets as they are
// now, to the Handler (as an SDS update), so listeners and clusters that
// use them take them for new connections. A Handler error is logged and
// the previous secrets keep serving.
func (c *Client) UpdateLocal() error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.mu.Lock()
	cand := c.cur.clone()
	c.mu.Unlock()
	cand.setLocal(c.localSecrets(), c.localVersion())
	if err := c.apply(SecretType, cand); err != nil {
		c.log.Error("local secrets rejected; the previous ones keep serving", "err", err)
		return err
	}
	c.mu.Lock()
	c.cur = cand
	c.mu.Unlock()
	return nil
}
