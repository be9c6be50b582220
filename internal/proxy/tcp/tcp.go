// Package tcp is the envoy.filters.network.tcp_proxy network filter: it
// picks a cluster (or one of weighted_clusters at random per connection),
// connects to one of its hosts and copies bytes both ways with half-close,
// an idle timeout and byte counters. A failed connect closes the downstream
// connection (flag UF, or what the cluster reports).
package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Env connects to clusters. Implementations read the current config on
// every call (an atomic load), so cluster updates apply to new connections.
type Env interface {
	// Dial connects to a host of the named cluster. originalDst is the
	// downstream's original destination (ip:port), used by ORIGINAL_DST
	// clusters. Errors should be *rflag.Error (NC, UH, UF, UO).
	Dial(ctx context.Context, cluster, originalDst string) (net.Conn, error)
}

// Options for a Proxy.
type Options struct {
	Log *slog.Logger
	// Rand returns a value in [0,n) for the weighted pick (default math/rand/v2).
	Rand func(n uint64) uint64
	// Observe builds the Observer for one tcp_proxy config (telemetry:
	// metrics and its access_log). nil: none, and access_log is rejected.
	Observe func(cfg *tcpv3.TcpProxy) (Observer, error)
	// Clock times idle timeouts and connection durations (default: the
	// wall clock), injected so tests can move time instead of sleeping.
	Clock Clock
}

// Clock is the time source of a Proxy. It must be safe for concurrent use;
// AfterFunc runs f on its own goroutine or on the caller of whatever moves
// the clock, never while holding a lock f might need.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer a Proxy uses.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

type wallClock struct{}

func (wallClock) Now() time.Time                            { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Observer sees every proxied connection (telemetry). Open runs when the
// cluster is picked, Close when both directions are done; neither may block.
type Observer interface {
	Open(c *Conn)
	Close(c *Conn)
}

// RefusalObserver is an Observer that also sees connections a filter in
// front of the proxy refused (network RBAC): they get an access-log line
// but never reached the proxy, so they count in no connection metric.
type RefusalObserver interface {
	Refused(c *Conn)
}

// Conn is what happened on one proxied connection. Only valid during the
// Observer calls.
type Conn struct {
	Downstream *downstream.Info
	Cluster    string
	Host       string // upstream peer ip:port ("" if the connect failed)
	LocalAddr  string // upstream local ip:port
	Start      time.Time
	Duration   time.Duration
	// Bytes from and to downstream so far: live while the connection
	// runs (an observer may report them periodically), final at Close.
	Received atomic.Int64
	Sent     atomic.Int64
	Flags    rflag.Flags
	// TerminationDetails says why the proxy closed the connection itself
	// (Envoy's %CONNECTION_TERMINATION_DETAILS%), e.g. an RBAC denial.
	TerminationDetails string
	State              any // the Observer's per-connection state
}

// Proxy is a compiled tcp_proxy; safe for concurrent connections.
type Proxy struct {
	env         Env
	log         *slog.Logger
	statPrefix  string
	clusters    []weighted
	total       uint64
	idleTimeout time.Duration // 0: none
	rand        func(uint64) uint64
	stats       Stats
	obs         Observer
	clock       Clock
}

type weighted struct {
	name   string
	weight uint64
}

// Stats are Envoy-named tcp_proxy counters (tcp.<stat_prefix>.*).
type Stats struct {
	DownstreamCxTotal      atomic.Int64 // downstream_cx_total
	DownstreamCxRxBytes    atomic.Int64 // downstream_cx_rx_bytes_total
	DownstreamCxTxBytes    atomic.Int64 // downstream_cx_tx_bytes_total
	IdleTimeout            atomic.Int64 // idle_timeout
	UpstreamConnectFailure atomic.Int64 // upstream_flush… Envoy counts connect failures on the cluster; kept here too
	DownstreamCxActive     atomic.Int64 // downstream_cx_active (gauge)
}

// defaultIdle is Envoy's tcp_proxy idle_timeout when unset.
const defaultIdle = time.Hour

// New compiles a TcpProxy config. Errors name the field.
func New(cfg *tcpv3.TcpProxy, env Env, opts Options) (*Proxy, error) {
	if err := xdsfield.Check(cfg, "tcp_proxy", "stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "access_log"); err != nil {
		return nil, err
	}
	if opts.Observe == nil && len(cfg.GetAccessLog()) > 0 {
		return nil, errors.New("tcp_proxy: access_log needs telemetry, which this proxy was built without")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Uint64N
	}
	if opts.Clock == nil {
		opts.Clock = wallClock{}
	}
	p := &Proxy{env: env, log: opts.Log, statPrefix: cfg.GetStatPrefix(), idleTimeout: defaultIdle, rand: opts.Rand,
		clock: opts.Clock}
	if d := cfg.GetIdleTimeout(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, fmt.Errorf("tcp_proxy: idle_timeout: %v", err)
		}
		p.idleTimeout = d.AsDuration()
	}
	switch s := cfg.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if s.Cluster == "" {
			return nil, errors.New("tcp_proxy: cluster is empty")
		}
		p.clusters = []weighted{{s.Cluster, 1}}
	case *tcpv3.TcpProxy_WeightedClusters:
		for i, c := range s.WeightedClusters.GetClusters() {
			if err := xdsfield.Check(c, fmt.Sprintf("tcp_proxy.weighted_clusters.clusters[%d]", i), "name", "weight"); err != nil {
				return nil, err
			}
			if c.GetName() == "" {
				return nil, fmt.Errorf("tcp_proxy: weighted_clusters.clusters[%d]: name is empty", i)
			}
			if c.GetWeight() == 0 {
				continue
			}
			p.clusters = append(p.clusters, weighted{c.GetName(), uint64(c.GetWeight())})
		}
		if len(p.clusters) == 0 {
			return nil, errors.New("tcp_proxy: weighted_clusters: no cluster with a weight")
		}
	default:
		return nil, errors.New("tcp_proxy: cluster or weighted_clusters is required")
	}
	for _, c := range p.clusters {
		p.total += c.weight
	}
	if opts.Observe != nil {
		obs, err := opts.Observe(cfg)
		if err != nil {
			return nil, err
		}
		p.obs = obs
	}
	return p, nil
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() *Stats { return &p.stats }

// StatPrefix is the configured stat_prefix.
func (p *Proxy) StatPrefix() string { return p.statPrefix }

// Pick chooses a cluster: weighted random per connection.
func (p *Proxy) Pick() string {
	if len(p.clusters) == 1 {
		return p.clusters[0].name
	}
	n := p.rand(p.total)
	for _, c := range p.clusters {
		if n < c.weight {
			return c.name
		}
		n -= c.weight
	}
	return p.clusters[len(p.clusters)-1].name
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Refuse closes c, which a filter in front of the proxy denied, and logs
// it with details (Envoy's connection termination details, e.g.
// "rbac_access_denied_matched_policy[none]").
func (p *Proxy) Refuse(c net.Conn, info *downstream.Info, details string) {
	c.Close()
	if ro, ok := p.obs.(RefusalObserver); ok {
		ro.Refused(&Conn{Downstream: info, Start: p.clock.Now(), TerminationDetails: details})
	}
}

// ServeConn proxies c to a host of the picked cluster until both
// directions are done, either side resets, or the idle timeout passes.
func (p *Proxy) ServeConn(c net.Conn, info *downstream.Info) {
	defer c.Close()
	p.stats.DownstreamCxTotal.Add(1)
	p.stats.DownstreamCxActive.Add(1)
	defer p.stats.DownstreamCxActive.Add(-1)
	cluster := p.Pick()
	var oc *Conn
	if p.obs != nil {
		oc = &Conn{Downstream: info, Cluster: cluster, Start: p.clock.Now()}
		p.obs.Open(oc)
		defer func() {
			oc.Duration = p.clock.Now().Sub(oc.Start)
			p.obs.Close(oc)
		}()
	}
	up, err := p.env.Dial(context.Background(), cluster, info.OriginalDst.String())
	if err != nil {
		p.stats.UpstreamConnectFailure.Add(1)
		flag := rflag.UF
		var fe *rflag.Error
		if errors.As(err, &fe) {
			flag = fe.Flag
		}
		if oc != nil {
			oc.Flags = flag
		}
		p.log.Debug("tcp_proxy upstream connect failed", "cluster", cluster, "flags", flag.String(), "err", err,
			"listener", info.Listener, "src", info.Remote)
		return
	}
	defer up.Close()
	var lrx, ltx atomic.Int64 // this connection's bytes (the observer's when there is one)
	rx, tx := &lrx, &ltx
	if oc != nil {
		oc.Host, oc.LocalAddr = up.RemoteAddr().String(), up.LocalAddr().String()
		rx, tx = &oc.Received, &oc.Sent
	}
	var last atomic.Int64
	last.Store(p.clock.Now().UnixNano())
	done := make(chan struct{})
	var idled atomic.Bool
	if p.idleTimeout > 0 {
		var t Timer
		var check func()
		check = func() {
			select {
			case <-done:
				return
			default:
			}
			idle := p.clock.Now().Sub(time.Unix(0, last.Load()))
			if idle >= p.idleTimeout {
				idled.Store(true)
				c.Close()
				up.Close()
				return
			}
			t.Reset(p.idleTimeout - idle)
		}
		t = p.clock.AfterFunc(p.idleTimeout, check)
		defer t.Stop()
	}
	errc := make(chan error, 2)
	go func() { errc <- p.pipe(up, c, &last, &p.stats.DownstreamCxRxBytes, rx) }()
	go func() { errc <- p.pipe(c, up, &last, &p.stats.DownstreamCxTxBytes, tx) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			// A reset or error on one side ends both.
			c.Close()
			up.Close()
		}
	}
	close(done)
	if idled.Load() {
		p.stats.IdleTimeout.Add(1)
	}
}

// pipe copies src to dst; at EOF it half-closes dst so the peer sees the
// FIN while the other direction keeps flowing.
func (p *Proxy) pipe(dst, src net.Conn, last *atomic.Int64, count, conn *atomic.Int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			last.Store(p.clock.Now().UnixNano())
			count.Add(int64(n))
			conn.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err == nil {
					return nil
				}
			}
			// No half-close available: the only way to signal EOF is to close.
			return io.EOF
		}
		if rerr != nil {
			return rerr
		}
	}
}
