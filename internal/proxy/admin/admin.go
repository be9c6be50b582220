// Package admin is weft-proxy's admin interface, shaped like Envoy's:
// /config_dump (resources as received, Envoy's ConfigDump JSON), /clusters,
// /stats, /ready, /healthz, /logging, /quitquitquit and /drain_listeners
// (with inboundonly and graceful) on the admin port; /healthz/ready on the
// health port; Prometheus text on the stats port. It reads the runtime and
// never changes config.
package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/promtext"
	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// Source is what admin reads: the runtime.
type Source interface {
	Resources() *xdsclient.Resources
	Clusters() *cluster.Set
	TCPStats(fn func(prefix string, s *tcp.Stats))
	// Warming lists listeners waiting for routes or secrets; ActiveListener
	// is the version serving meanwhile (nil if none).
	Warming() map[string][]string
	ActiveListener(name string) *listenerv3.Listener
}

// Options configure the admin handlers. Funcs may be nil.
type Options struct {
	Log   *slog.Logger
	Level *slog.LevelVar // changed by /logging?level=
	Ready func() bool    // first complete config applied
	XDS   func() xdsclient.Status
	Quit  func() // /quitquitquit
	// Drain is /drain_listeners with Envoy's flags ?inboundonly&graceful.
	Drain   func(inboundOnly, graceful bool)
	NoChain func() int64
	// PreCxTimeouts counts connections closed because listener filters
	// timed out (Envoy's downstream_pre_cx_timeout).
	PreCxTimeouts func() int64
	Listeners     func() []listener.ListenerStats
	ServerInfo    string
	// Prometheus appends more series to /stats/prometheus (telemetry's
	// istio_* metrics); Stats adds name/value pairs to /stats.
	Prometheus func(w io.Writer) error
	Stats      func(fn func(name string, v int64))
}

// Admin serves the admin, health and stats endpoints.
type Admin struct {
	src      Source
	opts     Options
	draining atomic.Bool
}

// New returns the admin endpoints over src.
func New(src Source, opts Options) *Admin {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Admin{src: src, opts: opts}
}

// Ready reports readiness: the first complete config is applied and the
// proxy is not draining.
func (a *Admin) Ready() bool {
	return a.opts.Ready != nil && a.opts.Ready() && !a.draining.Load()
}

// SetDraining marks the proxy as draining (not ready).
func (a *Admin) SetDraining() { a.draining.Store(true) }

// Handler serves the admin port (bind it to loopback only).
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", a.configDump)
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		a.src.Clusters().Dump(w)
	})
	mux.HandleFunc("/stats", a.stats)
	mux.HandleFunc("/stats/prometheus", a.prometheus)
	mux.HandleFunc("/listeners", func(w http.ResponseWriter, r *http.Request) {
		// Envoy's text form: name::address, one per bound listener.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if a.opts.Listeners == nil {
			return
		}
		for _, l := range a.opts.Listeners() {
			fmt.Fprintf(w, "%s::%s\n", l.Name, l.Addr)
		}
	})
	mux.HandleFunc("/ready", a.ready)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK\n") })
	mux.HandleFunc("/healthz/ready", a.ready)
	mux.HandleFunc("/logging", a.logging)
	mux.HandleFunc("/quitquitquit", a.post(func() {
		if a.opts.Quit != nil {
			a.opts.Quit()
		}
	}))
	mux.HandleFunc("/drain_listeners", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		a.post(func() {
			a.SetDraining()
			if a.opts.Drain != nil {
				a.opts.Drain(q.Has("inboundonly"), q.Has("graceful"))
			}
		})(w, r)
	})
	mux.HandleFunc("/server_info", func(w http.ResponseWriter, r *http.Request) {
		st := "PRE_INITIALIZING"
		if a.Ready() {
			st = "LIVE"
		} else if a.draining.Load() {
			st = "DRAINING"
		}
		fmt.Fprintf(w, "{\"version\":%q,\"state\":%q}\n", a.opts.ServerInfo, st)
	})
	return mux
}

// HealthHandler serves the health port: /healthz/ready.
func (a *Admin) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", a.ready)
	return mux
}

// StatsHandler serves the stats port: /stats/prometheus (and /stats).
func (a *Admin) StatsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/prometheus", a.prometheus)
	mux.HandleFunc("/stats", a.stats)
	return mux
}

func (a *Admin) post(fn func()) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "this endpoint needs POST", http.StatusMethodNotAllowed)
			return
		}
		fn()
		io.WriteString(w, "OK\n")
	}
}

func (a *Admin) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case a.Ready():
		io.WriteString(w, "LIVE\n")
	case a.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "DRAINING\n")
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "PRE_INITIALIZING\n")
	}
}

func (a *Admin) logging(w http.ResponseWriter, r *http.Request) {
	if a.opts.Level == nil {
		http.Error(w, "log level is fixed", http.StatusNotImplemented)
		return
	}
	if lv := r.URL.Query().Get("level"); lv != "" {
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		var l slog.Level
		// Envoy's names: trace and critical map to the nearest slog level.
		switch strings.ToLower(lv) {
		case "trace":
			lv = "debug"
		case "critical", "off":
			lv = "error"
		}
		if err := l.UnmarshalText([]byte(lv)); err != nil {
			http.Error(w, fmt.Sprintf("unknown level %q (debug, info, warn, error)", lv), http.StatusBadRequest)
			return
		}
		a.opts.Level.Set(l)
		a.opts.Log.Info("log level changed", "level", l.String())
	}
	fmt.Fprintf(w, "active loggers:\n  weft-proxy: %s\n", strings.ToLower(a.opts.Level.Level().String()))
}

// statLines lists every stat as name/value, sorted by name.
func (a *Admin) statLines() [][2]string {
	var out [][2]string
	add := func(n string, v int64) { out = append(out, [2]string{n, fmt.Sprint(v)}) }
	set := a.src.Clusters()
	for _, name := range set.Names() {
		set.Get(name).Stats().Each(func(stat string, v int64) { add("cluster."+name+"."+stat, v) })
	}
	a.src.TCPStats(func(prefix string, s *tcp.Stats) {
		p := "tcp." + prefix + "."
		add(p+"downstream_cx_total", s.DownstreamCxTotal.Load())
		add(p+"downstream_cx_rx_bytes_total", s.DownstreamCxRxBytes.Load())
		add(p+"downstream_cx_tx_bytes_total", s.DownstreamCxTxBytes.Load())
		add(p+"downstream_cx_active", s.DownstreamCxActive.Load())
		add(p+"idle_timeout", s.IdleTimeout.Load())
		add(p+"upstream_connect_fail", s.UpstreamConnectFailure.Load())
	})
	if a.opts.Listeners != nil {
		for _, l := range a.opts.Listeners() {
			add("listener."+l.Addr+".downstream_cx_total", l.DownstreamCxTotal)
			add("listener."+l.Addr+".downstream_cx_active", l.DownstreamCxActive)
		}
	}
	if a.opts.NoChain != nil {
		add("listener.no_filter_chain_match", a.opts.NoChain())
	}
	if a.opts.PreCxTimeouts != nil {
		add("listener.downstream_pre_cx_timeout", a.opts.PreCxTimeouts())
	}
	if a.opts.Stats != nil {
		a.opts.Stats(add)
	}
	if a.opts.XDS != nil {
		st := a.opts.XDS()
		b := func(v bool) int64 {
			if v {
				return 1
			}
			return 0
		}
		add("control_plane.connected_state", b(st.Connected))
		for typ, ts := range st.Types {
			short := typ[strings.LastIndex(typ, ".")+1:]
			add("control_plane.xds."+short+".update_attempt", int64(ts.Responses))
			add("control_plane.xds."+short+".update_rejected_last", b(ts.LastNACK != ""))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func (a *Admin) stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	filter := r.URL.Query().Get("filter")
	for _, l := range a.statLines() {
		if filter != "" && !strings.Contains(l[0], filter) {
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", l[0], l[1])
	}
}

// prometheus renders cluster stats as envoy_cluster_<stat>{envoy_cluster_name=…},
// the names Envoy's /stats/prometheus uses.
func (a *Admin) prometheus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", promtext.ContentType)
	set := a.src.Clusters()
	type sample struct {
		labels string
		v      int64
	}
	series := map[string][]sample{}
	var names []string
	for _, cn := range set.Names() {
		set.Get(cn).Stats().Each(func(stat string, v int64) {
			m := "envoy_cluster_" + strings.ReplaceAll(stat, ".", "_")
			if _, ok := series[m]; !ok {
				names = append(names, m)
			}
			series[m] = append(series[m], sample{promtext.Labels("envoy_cluster_name", cn), v})
		})
	}
	a.src.TCPStats(func(prefix string, s *tcp.Stats) {
		for _, kv := range []struct {
			n string
			v int64
		}{
			{"envoy_tcp_downstream_cx_total", s.DownstreamCxTotal.Load()},
			{"envoy_tcp_downstream_cx_rx_bytes_total", s.DownstreamCxRxBytes.Load()},
			{"envoy_tcp_downstream_cx_tx_bytes_total", s.DownstreamCxTxBytes.Load()},
		} {
			if _, ok := series[kv.n]; !ok {
				names = append(names, kv.n)
			}
			series[kv.n] = append(series[kv.n], sample{promtext.Labels("envoy_tcp_prefix", prefix), kv.v})
		}
	})
	sort.Strings(names)
	pw := promtext.NewWriter(w)
	for _, m := range names {
		pw.Header(m, "counter", "")
		for _, s := range series[m] {
			pw.Int(m, s.labels, s.v)
		}
	}
	if a.opts.Prometheus != nil {
		a.opts.Prometheus(w)
	}
}
