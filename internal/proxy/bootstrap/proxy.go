package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/admin"
	"github.com/weftmesh/weft/internal/proxy/appprobe"
	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/identity"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/runtime"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/proxy/telemetry"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/version"
)

// Proxy is a running weft-proxy: the composition root.
type Proxy struct {
	cfg *Config
	// Identity is the workload certificate (nil without --root-cert).
	Identity *identity.Manager
	log      *slog.Logger
	Runtime  *runtime.Runtime
	XDS      *xdsclient.Client
	Admin    *admin.Admin
	// Telemetry: istio_* metrics, access logs, metadata exchange.
	Telemetry *telemetry.Telemetry

	cancel context.CancelFunc
	quit   chan struct{}
	quitO  sync.Once
	// hardStop ends the drain period early (a second signal).
	hardStop  chan struct{}
	hardStopO sync.Once
	lifeMu    sync.Mutex
	life      node.Lifecycle
	done      chan struct{}
	servers   []*http.Server
	addrs     map[string]string

	// preDrained: a graceful drain_listeners came before the stop signal
	// (the native sidecar's preStop); shutdown then has no drain period.
	preDrained atomic.Bool
}

// Start builds the proxy, binds the admin, health and stats ports and
// starts the xDS client. It runs until ctx ends or /quitquitquit, then
// drains (see Wait).
func Start(ctx context.Context, cfg *Config, log *slog.Logger, level *slog.LevelVar) (*Proxy, error) {
	var rt *runtime.Runtime
	tel := telemetry.New(telemetry.Options{Log: log.With("component", "telemetry"), Node: &cfg.Meta,
		// Tracing collectors are reached through their clusters.
		Dial: func(ctx context.Context, cluster, originalDst string) (net.Conn, error) {
			return rt.Dial(ctx, cluster, originalDst)
		},
		// destination_service on the destination reporter comes from the
		// inbound cluster's istio.services metadata.
		ClusterService: func(name string) (host, svcName, namespace string, ok bool) {
			c := rt.Cluster(name)
			if c == nil {
				return "", "", "", false
			}
			svcs := c.Services()
			if len(svcs) == 0 {
				return "", "", "", false
			}
			return svcs[0].Host, svcs[0].Name, svcs[0].Namespace, true
		}})
	rt = runtime.New(runtime.Options{
		Log:      log,
		Cluster:  cluster.Options{Resolver: &Resolver{Override: cfg.DNSOverride}},
		Listener: listener.Options{PeekTimeout: cfg.PeekTimeout, DrainTimeout: cfg.DrainDuration, PortMap: cfg.PortMap},
		HCM:      hcm.Options{Observe: tel.HTTP, OwnHTTP2: cfg.OwnHTTP2},
		TCP:      tcp.Options{Observe: tel.TCP},
	})
	// The proxy announces itself starting; its endpoint is published once
	// it says ready (see node.Lifecycle).
	xo := xdsclient.Options{Server: cfg.XDS, Node: cfg.lifecycleNode(node.LifecycleStarting), Handler: rt, Log: log.With("component", "xds")}
	var id *identity.Manager
	if cfg.RootCert != "" {
		var err error
		id, err = identity.New(identity.Options{CAAddress: cfg.CAAddress, RootCertFile: cfg.RootCert, TokenFile: cfg.TokenFile,
			Log: log.With("component", "identity")})
		if err != nil {
			tel.Close()
			return nil, err
		}
		// default and ROOTCA are served locally; xDS runs over mTLS with
		// the workload certificate.
		xo.Local = id
		xo.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(id.ClientTLS()))}
	} else {
		log.Warn("no --root-cert: plaintext xDS and no workload identity (development only)", "xds", cfg.XDS)
	}
	xc := xdsclient.New(xo)
	if id != nil {
		id.OnChange(func() { _ = xc.UpdateLocal() })
	}
	p := &Proxy{cfg: cfg, log: log, Identity: id, Runtime: rt, XDS: xc, Telemetry: tel, quit: make(chan struct{}), hardStop: make(chan struct{}), done: make(chan struct{}), addrs: map[string]string{}}
	p.Admin = admin.New(rt, admin.Options{
		Log: log, Level: level, XDS: xc.Status, ServerInfo: version.String("weft-proxy"),
		Ready: func() bool {
			select {
			case <-xc.Ready():
				return true
			default:
				return false
			}
		},
		Quit:          func() { p.quitO.Do(func() { close(p.quit) }) },
		Drain:         p.drainListeners,
		NoChain:       rt.Listeners().NoChainMatches,
		PreCxTimeouts: rt.Listeners().SniffTimeouts,
		Listeners:     rt.Listeners().Stats,
		Prometheus:    tel.WritePrometheus,
		Stats: func(fn func(name string, v int64)) {
			tel.Stats(fn)
			rt.Counters().Each(fn)
		},
	})
	for _, s := range []struct {
		name, addr string
		h          http.Handler
	}{
		{"admin", cfg.AdminAddr(), p.Admin.Handler()},
		{"health", cfg.PublicAddr(cfg.HealthPort), p.Admin.HealthHandler()},
		{"stats", cfg.PublicAddr(cfg.StatsPort), p.Admin.StatsHandler()},
		{"merged", cfg.PublicAddr(cfg.MergedPort), statusHandler(cfg, telemetry.MergedHandler(p.Admin.StatsHandler(), cfg.AppMetrics, log), log)},
	} {
		ln, err := listener.Listen(s.addr)
		if err != nil {
			p.closeServers()
			tel.Close()
			return nil, fmt.Errorf("%s port: %w", s.name, err)
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		p.servers = append(p.servers, srv)
		p.addrs[s.name] = ln.Addr().String()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("server failed", "server", s.name, "err", err)
			}
		}()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	xdsDone := make(chan struct{})
	go func() {
		defer close(xdsDone)
		if id != nil {
			// xDS over mTLS needs the certificate first.
			if err := id.Start(runCtx); err != nil {
				return
			}
			go id.Run(runCtx)
		}
		_ = xc.Run(runCtx)
	}()
	go func() {
		select {
		case <-xc.Ready():
			p.announce(node.LifecycleReady)
		case <-runCtx.Done():
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-p.quit:
		}
		p.shutdown(xdsDone)
	}()
	log.Info("weft-proxy started", "node", cfg.Meta.ID(), "xds", cfg.XDS, "admin", p.addrs["admin"],
		"health", p.addrs["health"], "stats", p.addrs["stats"], "merged", p.addrs["merged"])
	return p, nil
}

// StopNow cuts a drain short: the proxy stops at once.
func (p *Proxy) StopNow() { p.hardStopO.Do(func() { close(p.hardStop) }) }

// Addr returns the bound address of "admin", "health", "stats" or "merged".
func (p *Proxy) Addr(name string) string { return p.addrs[name] }

// Wait blocks until the proxy has drained and stopped.
func (p *Proxy) Wait() { <-p.done }

// Done is closed when the proxy has stopped.
func (p *Proxy) Done() <-chan struct{} { return p.done }

// announce tells the control plane the proxy's lifecycle; later states
// win (draining is never undone by a late ready).
func (p *Proxy) announce(l node.Lifecycle) {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.life == node.LifecycleDraining {
		return
	}
	p.life = l
	if err := p.XDS.SetNode(p.cfg.lifecycleNode(l)); err != nil {
		p.log.Warn("announcing lifecycle to the control plane", "state", l, "err", err)
	}
}

// shutdown drains as Envoy under pilot-agent does: readiness fails, the
// control plane is told (the endpoint leaves EDS at once), listeners keep
// accepting and serving for the drain duration with Connection: close so
// clients move away, then whatever is left is closed and the proxy stops.
func (p *Proxy) shutdown(xdsDone <-chan struct{}) {
	defer close(p.done)
	p.Admin.SetDraining()
	p.announce(node.LifecycleDraining)
	p.Runtime.Listeners().StartDrain()
	if p.preDrained.Load() {
		// As Istio's agent after /drain: the drain began when the pod
		// started terminating, and a native sidecar is stopped only once
		// the app has exited, so nothing is left to wait for.
		p.log.Info("stopping: drained since drain_listeners")
	} else if p.cfg.ExitOnZeroActive {
		p.drainUntilIdle()
	} else {
		p.log.Info("draining", "duration", p.cfg.DrainDuration)
		t := time.NewTimer(p.cfg.DrainDuration)
		select {
		case <-t.C:
		case <-p.hardStop:
			t.Stop()
		}
	}
	// The drain period is over: idle connections close now; requests
	// still in flight get a last second.
	p.Runtime.Listeners().CloseIdle()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	p.Runtime.Close(ctx)
	cancel()
	p.cancel()
	<-xdsDone
	p.closeServers()
	p.Telemetry.Close()
	p.log.Info("stopped")
}

// drainListeners serves the admin's drain_listeners. A graceful drain
// keeps serving while connections end (inboundOnly: the inbound listeners
// only, Istio's native-sidecar preStop); it means the workload is going
// away, so the control plane is told and a later stop signal exits without
// a second drain period. Otherwise the listening sockets close.
func (p *Proxy) drainListeners(inboundOnly, graceful bool) {
	ls := p.Runtime.Listeners()
	switch {
	case graceful && inboundOnly:
		ls.DrainInbound()
	case graceful:
		ls.StartDrain()
	case inboundOnly:
		ls.StopAcceptingInbound()
	default:
		ls.StopAccepting()
	}
	if graceful {
		p.log.Info("draining listeners", "inboundonly", inboundOnly, "idle_close_after", p.cfg.DrainDuration)
		p.preDrained.Store(true)
		p.announce(node.LifecycleDraining)
	}
}

func (p *Proxy) closeServers() {
	for _, s := range p.servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
}

// statusHandler is Istio's status port (15020): merged metrics, the
// app's own probes under /app-health/ when the injector rewrote them, and
// the app containers' postStart hook under /app-ports/.
func statusHandler(cfg *Config, merged http.Handler, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	if len(cfg.AppProbers) > 0 {
		mux.Handle("/app-health/", appprobe.Handler(cfg.AppProbers, cfg.Meta.AppAddress))
	}
	mux.Handle(appprobe.PortsPath, appprobe.PortsHandler(appPortsBound, log))
	mux.Handle("/", merged)
	return mux
}

// appPortsBound is how long an app container's postStart hook waits for
// its ports (the kubelet starts the pod's next container only after it).
const appPortsBound = 30 * time.Second
