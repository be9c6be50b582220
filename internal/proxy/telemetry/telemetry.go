package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/promtext"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/hcm"
)

// Options configure a Telemetry. The zero value works (unknown identity,
// sidecar, metrics on).
type Options struct {
	Log *slog.Logger
	// Node is the proxy's own identity: the labels of its side of every
	// hop and what it tells peers.
	Node *node.Meta
	// DisableMetrics turns the istio_* metrics off (benchmarks compare).
	DisableMetrics bool
	// Stdout is where "/dev/stdout" access logs go (default os.Stdout).
	Stdout io.Writer
	// TCPReportInterval is how often open TCP connections' bytes are
	// added to the istio_tcp_* counters (Istio's tcpReportingDuration,
	// default 15s); closing a connection always reports it.
	TCPReportInterval time.Duration
	// Dial connects to a host of a cluster (the runtime's tcp.Env.Dial),
	// for tracing collectors named by cluster. nil: such configs dial the
	// address in the config directly.
	Dial func(ctx context.Context, cluster, originalDst string) (net.Conn, error)
	// ClusterService names the service a cluster carries in its
	// istio.services metadata (the first entry), as Istio's stats filter
	// reads it for the destination reporter: inbound|PORT|| clusters say
	// which service the workload serves there, whatever Host the client
	// sent. Called per request and connection, so it must be cheap and
	// not allocate. nil, or ok false: the service comes from the Host.
	ClusterService func(cluster string) (host, name, namespace string, ok bool)
}

// Telemetry is one proxy's metrics, access log sinks and metadata
// exchange. Safe for concurrent use; Close stops the log writers.
type Telemetry struct {
	log     *slog.Logger
	metrics *Metrics
	router  bool
	local   *Workload
	mdID    []string // x-envoy-peer-metadata-id value
	md      []string // x-envoy-peer-metadata value
	peers   peerCache
	sinks   sinks
	exps    exporters
	dial    func(ctx context.Context, cluster, originalDst string) (net.Conn, error)
	nodeID  string
	version string
	off     bool

	conns      sync.Map // *tcpConn → struct{}: open TCP connections
	stopReport chan struct{}
	reportDone chan struct{}
	closeOnce  sync.Once
}

// New returns a Telemetry for the proxy described by opts.Node.
func New(opts Options) *Telemetry {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	t := &Telemetry{log: opts.Log, local: LocalWorkload(opts.Node), off: opts.DisableMetrics, dial: opts.Dial}
	t.version = "unknown"
	if opts.Node != nil {
		t.nodeID = opts.Node.ID()
		if opts.Node.Version != "" {
			t.version = opts.Node.Version
		}
	}
	t.router = opts.Node != nil && opts.Node.Type == node.Router
	t.metrics = newMetrics(t.local, t.router)
	t.metrics.clusterSvc = opts.ClusterService
	t.sinks.stdout = opts.Stdout
	if id, md := encodeMetadata(opts.Node); md != "" {
		t.mdID, t.md = []string{id}, []string{md}
	}
	if opts.TCPReportInterval <= 0 {
		opts.TCPReportInterval = 15 * time.Second
	}
	t.stopReport, t.reportDone = make(chan struct{}), make(chan struct{})
	go t.reportLoop(opts.TCPReportInterval)
	return t
}

// Close flushes and closes the access log sinks and span exporters.
func (t *Telemetry) Close() {
	t.closeOnce.Do(func() {
		close(t.stopReport)
		<-t.reportDone
		t.sinks.close()
		t.exps.close()
	})
}

// Metrics returns the istio_* metrics.
func (t *Telemetry) Metrics() *Metrics { return t.metrics }

// WritePrometheus renders istio_build, the istio_* metrics and the
// access log and span exporter counters (Prometheus text).
func (t *Telemetry) WritePrometheus(w io.Writer) error {
	pw := promtext.NewWriter(w)
	pw.Header("istio_build", "gauge", "")
	pw.Int("istio_build", promtext.Labels("component", "proxy", "tag", t.version), 1)
	type sample struct {
		name, labels string
		v            int64
	}
	var ss []sample
	t.Stats(func(name string, v int64) {
		// access_log.<path>.dropped_lines → weft_access_log_dropped_lines{path=…}
		if rest, ok := strings.CutPrefix(name, "access_log."); ok {
			i := strings.LastIndexByte(rest, '.')
			ss = append(ss, sample{"weft_access_log_" + rest[i+1:], promtext.Labels("path", rest[:i]), v})
		}
	})
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].name != ss[j].name {
			return ss[i].name < ss[j].name
		}
		return ss[i].labels < ss[j].labels
	})
	for i, s := range ss {
		if i == 0 || ss[i-1].name != s.name {
			pw.Header(s.name, "counter", "")
		}
		pw.Int(s.name, s.labels, s.v)
	}
	if pw.Err() != nil {
		return pw.Err()
	}
	return t.metrics.WritePrometheus(w)
}

// Stats calls fn with the telemetry's own Envoy-style counters.
func (t *Telemetry) Stats(fn func(name string, v int64)) {
	t.sinks.each(func(s *sink) {
		fn("access_log."+s.path+".dropped_lines", s.dropped.Load())
		fn("access_log."+s.path+".written_lines", s.written.Load())
	})
	t.exps.mu.Lock()
	defer t.exps.mu.Unlock()
	for _, e := range t.exps.m {
		fn("tracing.opentelemetry."+e.name+".spans_exported", e.exported.Load())
		fn("tracing.opentelemetry."+e.name+".spans_dropped", e.dropped.Load())
		fn("tracing.opentelemetry."+e.name+".spans_failed", e.failed.Load())
	}
}

// inboundName says whether a stat prefix or cluster name belongs to the
// server side of a sidecar (Istio: inbound listeners and clusters).
func inboundName(s string) bool {
	return strings.HasPrefix(s, "inbound") || strings.HasPrefix(s, "InboundPassthrough")
}

// HTTP builds the hcm.Observer for one HCM config: metrics, metadata
// exchange and the config's access_log. Pass it as hcm.Options.Observe.
func (t *Telemetry) HTTP(cfg *hcmv3.HttpConnectionManager) (hcm.Observer, error) {
	logs, err := t.compileAccessLogs(cfg.GetAccessLog(), "http_connection_manager")
	if err != nil {
		return nil, err
	}
	dest := !t.router && inboundName(cfg.GetStatPrefix())
	tr, err := t.compileTracing(cfg, dest)
	if err != nil {
		return nil, err
	}
	side := filter.NoTracing
	if cfg.GetTracing() != nil {
		side = filter.TraceEgress
		if dest {
			side = filter.TraceIngress
		}
	}
	return &httpObserver{t: t, dest: dest, side: side, logs: logs, tracer: tr}, nil
}

type httpObserver struct {
	t      *Telemetry
	dest   bool             // reporter destination (server side)
	side   filter.TraceSide // tracing configured: ingress or egress
	logs   []*accessLogger
	tracer *tracer // nil: no tracing
}

var _ hcm.Observer = (*httpObserver)(nil)

func (o *httpObserver) Request(r *http.Request, info *filter.Info) {
	h := r.Header
	info.RequestHeader = h
	if ct, ok := h["Content-Type"]; ok && len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
		info.GRPC = true
	}
	if o.tracer != nil {
		if s := o.tracer.start(r, info); s != nil {
			info.Span = s
		}
	}
	info.Tracing = o.side
	if o.side == filter.TraceIngress {
		// Envoy: an inbound request's x-envoy-decorator-operation names
		// the server span (the caller's route), and then no operation is
		// returned in the response.
		if v, ok := h[filter.HeaderDecoratorOperation]; ok {
			info.SpanNameSet = true
			if len(v) > 0 {
				info.SpanName = v[0]
			}
		}
	}
	if o.dest {
		if p := o.t.peers.takePeer(h); p != nil {
			info.Peer = p
		}
		return
	}
	// Client side: say who we are, replacing whatever the app sent.
	if o.t.md != nil {
		h[HeaderPeerMetadataID] = o.t.mdID
		h[HeaderPeerMetadata] = o.t.md
	} else {
		delete(h, HeaderPeerMetadata)
		delete(h, HeaderPeerMetadataID)
	}
}

func (o *httpObserver) Response(h http.Header, info *filter.Info) {
	info.ResponseHeader = h
	switch o.side {
	case filter.TraceIngress:
		// Envoy returns the inbound route's operation so the caller's
		// proxy can name its client span after it.
		if !info.SpanNameSet && info.Propagate && info.Operation != "" {
			h[filter.HeaderDecoratorOperation] = []string{info.Operation}
		}
	case filter.TraceEgress:
		// ...which names the client span, and is not passed to the app.
		if v, ok := h[filter.HeaderDecoratorOperation]; ok {
			info.SpanNameSet = true
			if len(v) > 0 {
				info.SpanName = v[0]
			}
			delete(h, filter.HeaderDecoratorOperation)
		}
	}
	if info.GRPC {
		if v, ok := h["Grpc-Status"]; ok && len(v) > 0 {
			info.GRPCStatus = v[0]
		}
	}
	if o.dest {
		if o.t.md != nil {
			h[HeaderPeerMetadataID] = o.t.mdID
			h[HeaderPeerMetadata] = o.t.md
		}
		return
	}
	if p := o.t.peers.takePeer(h); p != nil {
		info.Peer = p
	}
}

func (o *httpObserver) Complete(info *filter.Info) {
	if info.GRPC && info.GRPCStatus == "" && info.ResponseHeader != nil {
		// A gRPC status usually comes in the trailers, which the router
		// adds to the response header map (http.TrailerPrefix) at the end.
		if v := first(info.ResponseHeader, http.TrailerPrefix+"Grpc-Status"); v != "" {
			info.GRPCStatus = v
		} else {
			info.GRPCStatus = first(info.ResponseHeader, "Grpc-Status")
		}
	}
	if !o.t.off {
		peer, _ := info.Peer.(*Workload)
		o.t.metrics.recordHTTP(info, o.dest, peer, info.GRPC, info.GRPCStatus)
	}
	if o.tracer != nil {
		if s, ok := info.Span.(*span); ok {
			o.tracer.finish(o.t, s, info)
		}
	}
	if len(o.logs) > 0 {
		e := Entry{Info: info}
		for _, l := range o.logs {
			l.log(&e)
		}
	}
}
