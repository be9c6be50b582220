// Package runtime holds weft-proxy's live configuration: the compiled route
// tables, the cluster Set, the secrets and the listeners, behind one atomic
// pointer. Every xDS update is compiled beside the current config (clusters
// and routes that did not change are carried over), swapped in atomically,
// and what was removed drains; a compile or bind error rejects the update
// (NACK) and the old config keeps serving. The hot path (hcm.Env and the
// TCP proxy's Dial) is a lock-free atomic load.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthznetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/filter/extauthz"
	"github.com/weftmesh/weft/internal/proxy/filter/rbac"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// tcp_proxy logs the connections network RBAC in front of it refuses.
var _ rbac.Refuser = (*tcp.Proxy)(nil)

// Options configures a Runtime.
type Options struct {
	Log      *slog.Logger
	Cluster  cluster.Options
	Listener listener.Options
	HCM      hcm.Options
	TCP      tcp.Options // Log is set per listener
	// Counters holds filter stats (rbac, jwt_authn); nil: a fresh set.
	Counters *filter.Counters
	// RetireDelay is how long a replaced cluster Set stays open, so
	// requests that picked a host from it just before the swap can still
	// get a connection (default 2s). Its busy connections drain anyway.
	RetireDelay time.Duration
}

// Runtime is the proxy's current config. Apply is called by the xDS client
// (one goroutine); the Env methods are called per request from anywhere.
type Runtime struct {
	opts      Options
	log       *slog.Logger
	listeners *listener.Manager

	mu   sync.Mutex // serializes Apply and Close
	snap atomic.Pointer[snapshot]
}

// snapshot is one immutable compiled config.
type snapshot struct {
	res       *xdsclient.Resources
	routes    map[string]*compiledRoute
	clusters  *cluster.Set
	listeners map[string]*compiledListener
	// warming lists listeners whose latest version waits for routes or
	// secrets; the previous version (if any) serves meanwhile.
	warming map[string][]string
}

type compiledRoute struct {
	raw   []byte // as received (xdsclient.Resources.Routes)
	table *route.Table
}

type compiledListener struct {
	src *listenerv3.Listener
	cfg *listener.Config
	tcp []*tcp.Proxy // for stats
	// terminal are the HTTP connection managers and TCP proxies built for
	// it, by the filter they came from, for reuse by the next version.
	terminal []builtFilter
}

type builtFilter struct {
	src *listenerv3.Filter
	h   listener.Handler
	tcp *tcp.Proxy
}

var (
	_ hcm.Env            = (*Runtime)(nil)
	_ tcp.Env            = (*Runtime)(nil)
	_ xdsclient.Handler  = (*Runtime)(nil)
	_ xdsclient.Retainer = (*Runtime)(nil)
)

// New returns a Runtime with an empty config and no listeners.
func New(opts Options) *Runtime {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RetireDelay <= 0 {
		opts.RetireDelay = 2 * time.Second
	}
	if opts.Cluster.Log == nil {
		opts.Cluster.Log = opts.Log.With("component", "cluster")
	}
	if opts.Counters == nil {
		opts.Counters = &filter.Counters{}
	}
	if opts.HCM.Counters == nil {
		opts.HCM.Counters = opts.Counters
	}
	if opts.HCM.Log == nil {
		opts.HCM.Log = opts.Log.With("component", "hcm")
	}
	if opts.Listener.Log == nil {
		opts.Listener.Log = opts.Log.With("component", "listener")
	}
	r := &Runtime{opts: opts, log: opts.Log, listeners: listener.NewManager(opts.Listener)}
	r.snap.Store(&snapshot{res: xdsclient.NewResources(), routes: map[string]*compiledRoute{}, listeners: map[string]*compiledListener{}})
	return r
}

// RouteTable implements hcm.Env: the current table for an RDS name.
func (r *Runtime) RouteTable(name string) *route.Table {
	if c := r.snap.Load().routes[name]; c != nil {
		return c.table
	}
	return nil
}

// Cluster implements hcm.Env: the current cluster, nil when unknown.
func (r *Runtime) Cluster(name string) *cluster.Cluster {
	return r.snap.Load().clusters.Get(name)
}

// Clusters returns the current cluster Set (for admin).
func (r *Runtime) Clusters() *cluster.Set { return r.snap.Load().clusters }

// Resources returns the accepted resources as received (for config_dump).
func (r *Runtime) Resources() *xdsclient.Resources { return r.snap.Load().res }

// Counters returns the filter stats (rbac, jwt_authn …).
func (r *Runtime) Counters() *filter.Counters { return r.opts.Counters }

// Listeners returns the listener manager.
func (r *Runtime) Listeners() *listener.Manager { return r.listeners }

// Dial implements tcp.Env.
func (r *Runtime) Dial(ctx context.Context, name, originalDst string) (net.Conn, error) {
	c := r.Cluster(name)
	if c == nil {
		return nil, &rflag.Error{Flag: rflag.NC, Details: "cluster_not_found", Err: fmt.Errorf("cluster %q", name)}
	}
	conn, _, err := c.Dial(ctx, &cluster.RequestOptions{OriginalDst: originalDst})
	return conn, err
}

// TCPStats calls fn for every tcp_proxy of the current listeners.
func (r *Runtime) TCPStats(fn func(prefix string, s *tcp.Stats)) {
	s := r.snap.Load()
	names := make([]string, 0, len(s.listeners))
	for n := range s.listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, p := range s.listeners[n].tcp {
			fn(p.StatPrefix(), p.Stats())
		}
	}
}

// Apply compiles res beside the current config and swaps it in. An error
// leaves the current config serving; it names the resource and field.
func (r *Runtime) Apply(typeURL string, res *xdsclient.Resources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load()
	next := &snapshot{res: res, routes: map[string]*compiledRoute{}, clusters: old.clusters,
		listeners: map[string]*compiledListener{}, warming: map[string][]string{}}

	if typeURL == xdsclient.SecretType {
		for _, name := range sortedKeys(res.Secrets) {
			if err := checkSecret(res.Secrets[name]); err != nil {
				return fmt.Errorf("secret %q: %w", name, err)
			}
		}
	}

	// Routes: recompile only what changed.
	for _, name := range sortedKeys(res.Routes) {
		raw := res.Routes[name]
		if prev := old.routes[name]; prev != nil && xdsclient.SameEncoded[routev3.RouteConfiguration](prev.raw, raw) {
			next.routes[name] = prev
			continue
		}
		rc := &routev3.RouteConfiguration{}
		if err := proto.Unmarshal(raw, rc); err != nil {
			return fmt.Errorf("route_config %q: %w", name, err)
		}
		t, err := route.Compile(rc)
		if err != nil {
			return fmt.Errorf("route_config %q: %w", name, err)
		}
		next.routes[name] = &compiledRoute{raw: raw, table: t}
	}

	// Clusters: only CDS, EDS and SDS updates can change them.
	newSet := false
	if old.clusters == nil || typeURL == xdsclient.ClusterType || typeURL == xdsclient.EndpointType || typeURL == xdsclient.SecretType {
		list := make([]*clusterv3.Cluster, 0, len(res.Clusters))
		for _, name := range sortedKeys(res.Clusters) {
			list = append(list, res.Clusters[name])
		}
		set, err := cluster.BuildEncoded(old.clusters, list, res.Endpoints, res.Secrets, r.opts.Cluster)
		if err != nil {
			return err
		}
		next.clusters = set
		newSet = true
	}
	discard := func() {
		if newSet {
			next.clusters.Close()
		}
	}

	// Listeners: LDS and SDS updates, or routes a warming listener waits
	// for; unchanged listeners keep their compiled config (and so their
	// HTTP connection managers).
	rebuild := typeURL == xdsclient.ListenerType || typeURL == xdsclient.SecretType || len(old.listeners) == 0 ||
		(typeURL == xdsclient.RouteType && len(old.warming) > 0)
	var cfgs []*listener.Config
	for _, name := range sortedKeys(res.Listeners) {
		l := res.Listeners[name]
		prev := old.listeners[name]
		if prev != nil && (!rebuild || (typeURL != xdsclient.SecretType && (prev.src == l || proto.Equal(prev.src, l)))) {
			next.listeners[name] = prev
			cfgs = append(cfgs, prev.cfg)
			continue
		}
		// Envoy warms a listener until its RDS routes and SDS secrets
		// arrive: it is not bound (or its previous version keeps serving)
		// meanwhile, so no connection sees a half-configured listener.
		if missing := missingRefs(l, res); len(missing) > 0 {
			next.warming[name] = missing
			if prev != nil {
				next.listeners[name] = prev
				cfgs = append(cfgs, prev.cfg)
				// The serving version keeps its route tables even if the
				// received config no longer has them.
				routes, _ := xdsclient.ListenerRefs(prev.src)
				for _, n := range routes {
					if next.routes[n] == nil && old.routes[n] != nil {
						next.routes[n] = old.routes[n]
					}
				}
			}
			continue
		}
		cl := &compiledListener{src: l}
		cfg, err := listener.Compile(l, &deps{r: r, res: res, out: cl, prev: prev})
		if err != nil {
			discard()
			return err
		}
		cl.cfg = cfg
		next.listeners[name] = cl
		cfgs = append(cfgs, cfg)
	}
	// The new routes and clusters go live before listeners that use them.
	r.snap.Store(next)
	if err := r.listeners.Update(cfgs); err != nil {
		r.snap.Store(old)
		// Requests may have picked from the new clusters meanwhile.
		if newSet {
			time.AfterFunc(r.opts.RetireDelay, next.clusters.Close)
		}
		return err
	}
	if newSet && old.clusters != nil {
		time.AfterFunc(r.opts.RetireDelay, old.clusters.Close)
	}
	r.log.Debug("config applied", "type", typeURL, "listeners", len(next.listeners), "routes", len(next.routes), "clusters", len(res.Clusters))
	return nil
}

// Close stops every listener, draining connections until ctx ends, and
// releases the clusters.
func (r *Runtime) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listeners.Close(ctx)
	if s := r.snap.Load(); s.clusters != nil {
		s.clusters.Close()
	}
}

// deps builds network filters and resolves secrets for listener.Compile.
type deps struct {
	r   *Runtime
	res *xdsclient.Resources
	out *compiledListener
	// prev is the version being replaced: its terminal filters are reused
	// when their config is unchanged, so an update that only changes a
	// chain's TLS (an SDS rotation of "default") or another chain keeps
	// the connections of unchanged ones, as Envoy's SDS updates and
	// filter-chain-only updates do.
	prev *compiledListener
	used map[int]bool
}

// reuse returns the previous version's handler for an identical terminal
// filter.
func (d *deps) reuse(f *listenerv3.Filter) (listener.Handler, bool) {
	if d.prev == nil {
		return nil, false
	}
	for i, b := range d.prev.terminal {
		if d.used[i] || !proto.Equal(b.src, f) {
			continue
		}
		if d.used == nil {
			d.used = map[int]bool{}
		}
		d.used[i] = true
		d.out.terminal = append(d.out.terminal, b)
		if b.tcp != nil {
			d.out.tcp = append(d.out.tcp, b.tcp)
		}
		return b.h, true
	}
	return nil, false
}

func (d *deps) Secret(name string) *tlsv3.Secret { return d.res.Secrets[name] }

func (d *deps) NetworkFilter(listenerName string, f *listenerv3.Filter) (listener.Handler, error) {
	if err := xdsfield.Check(f, "filter", "name", "typed_config"); err != nil {
		return nil, err
	}
	tc := f.GetTypedConfig()
	if tc == nil {
		return nil, errors.New("typed_config is required")
	}
	if h, ok := d.reuse(f); ok {
		return h, nil
	}
	switch {
	case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
		cfg := &hcmv3.HttpConnectionManager{}
		if err := tc.UnmarshalTo(cfg); err != nil {
			return nil, err
		}
		m, err := hcm.New(cfg, d.r, d.r.opts.HCM)
		if err != nil {
			return nil, err
		}
		d.out.terminal = append(d.out.terminal, builtFilter{src: f, h: m})
		return m, nil
	case tc.MessageIs(&extauthznetv3.ExtAuthz{}):
		cfg := &extauthznetv3.ExtAuthz{}
		if err := tc.UnmarshalTo(cfg); err != nil {
			return nil, err
		}
		return extauthz.NewNetwork(cfg, extauthz.Options{Log: d.r.log.With("listener", listenerName), Env: netEnv{d.r}})
	case tc.MessageIs(&rbactcpv3.RBAC{}):
		cfg := &rbactcpv3.RBAC{}
		if err := tc.UnmarshalTo(cfg); err != nil {
			return nil, err
		}
		return rbac.NewNetwork(cfg, rbac.Options{Log: d.r.log.With("listener", listenerName), Counters: d.r.opts.Counters})
	case tc.MessageIs(&tcpv3.TcpProxy{}):
		cfg := &tcpv3.TcpProxy{}
		if err := tc.UnmarshalTo(cfg); err != nil {
			return nil, err
		}
		o := d.r.opts.TCP
		o.Log = d.r.log.With("listener", listenerName)
		p, err := tcp.New(cfg, d.r, o)
		if err != nil {
			return nil, err
		}
		d.out.tcp = append(d.out.tcp, p)
		d.out.terminal = append(d.out.terminal, builtFilter{src: f, h: p, tcp: p})
		return p, nil
	}
	return nil, fmt.Errorf("unsupported network filter type %s", tc.GetTypeUrl())
}

// checkSecret NACKs secret kinds weft-proxy does not use (session ticket
// keys, generic secrets) instead of ignoring them.
func checkSecret(s *tlsv3.Secret) error {
	if err := xdsfield.Check(s, "secret", "name", "tls_certificate", "validation_context"); err != nil {
		return err
	}
	if tc := s.GetTlsCertificate(); tc != nil {
		if err := xdsfield.Check(tc, "tls_certificate", "certificate_chain", "private_key"); err != nil {
			return err
		}
	}
	if vc := s.GetValidationContext(); vc != nil {
		if err := xdsfield.Check(vc, "validation_context", "trusted_ca", "match_typed_subject_alt_names"); err != nil {
			return err
		}
	}
	if s.GetTlsCertificate() == nil && s.GetValidationContext() == nil {
		return fmt.Errorf("neither tls_certificate nor validation_context is set")
	}
	return nil
}

func missingRefs(l *listenerv3.Listener, res *xdsclient.Resources) []string {
	routes, secrets := xdsclient.ListenerRefs(l)
	var out []string
	for _, n := range routes {
		if res.Routes[n] == nil {
			out = append(out, "route "+n)
		}
	}
	for _, n := range secrets {
		if res.Secrets[n] == nil {
			out = append(out, "secret "+n)
		}
	}
	return out
}

// ActiveListener returns the version of a listener that is serving (which
// differs from the received one while that warms), nil if none.
func (r *Runtime) ActiveListener(name string) *listenerv3.Listener {
	if l := r.snap.Load().listeners[name]; l != nil {
		return l.src
	}
	return nil
}

// Retained implements xdsclient.Retainer: the routes and secrets of the
// versions serving while their successors warm.
func (r *Runtime) Retained() xdsclient.Refs {
	s := r.snap.Load()
	out := xdsclient.Refs{Routes: map[string]bool{}, Secrets: map[string]bool{}}
	for name := range s.warming {
		if l := s.listeners[name]; l != nil {
			routes, secrets := xdsclient.ListenerRefs(l.src)
			for _, n := range routes {
				out.Routes[n] = true
			}
			for _, n := range secrets {
				out.Secrets[n] = true
			}
		}
	}
	return out
}

// Warming lists listeners waiting for routes or secrets, with what they
// wait for.
func (r *Runtime) Warming() map[string][]string { return r.snap.Load().warming }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The HTTP connection manager drains with its listener and retires when a
// listener update replaces it.
var (
	_ listener.Drainer = (*hcm.Manager)(nil)
	_ listener.Retirer = (*hcm.Manager)(nil)
)

// netEnv gives network filters (ext_authz) the current clusters for
// dialing; HTTP round trips are the connection manager's business.
type netEnv struct{ r *Runtime }

func (e netEnv) Upstream(name string) filter.Upstream {
	c := e.r.Cluster(name)
	if c == nil {
		return nil
	}
	return dialOnly{c}
}

type dialOnly struct{ c *cluster.Cluster }

func (d dialOnly) RoundTrip(*http.Request, *filter.Attempt) (*http.Response, string, error) {
	return nil, "", errors.New("network filters only dial")
}

func (d dialOnly) Dial(ctx context.Context, _ *filter.Attempt) (net.Conn, string, error) {
	conn, a, err := d.c.Dial(ctx, &cluster.RequestOptions{})
	host := ""
	if a != nil {
		host = a.Host
	}
	return conn, host, err
}
