// Package hcm is weft-proxy's HTTP connection manager, the
// envoy.filters.network.http_connection_manager network filter: it serves
// HTTP/1.1 (keep-alive, chunked, 100-continue, upgrades, absolute-URI proxy
// requests and CONNECT) and HTTP/2 (h2c prior knowledge, h2 over TLS via
// ALPN) on a downstream connection, looks the route up (inline or RDS, on
// every request so RDS updates reach open connections), runs the HTTP
// filter chain and turns filter errors into local replies and response
// flags, in one place.
//
// A Manager is immutable after New and safe for concurrent use; the
// runtime builds a new one when the listener's HCM config changes.
package hcm

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/park"
	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Env is the current configuration as the runtime sees it. Implementations
// are safe for concurrent use and cheap (an atomic load): they are called on
// every request.
type Env interface {
	// RouteTable returns the current table for an RDS name; nil → 404 NR.
	RouteTable(name string) *route.Table
	// Cluster returns the current cluster; nil → 503 NC.
	Cluster(name string) *cluster.Cluster
}

// StreamInfo is what happened to one request (see filter.Info).
type StreamInfo = filter.Info

// Options configure a Manager. The zero value works.
type Options struct {
	Log *slog.Logger
	// OnComplete is called once per request after the response ends
	// (access logs, metrics). The Info is only valid during the call.
	OnComplete func(*StreamInfo)
	// Sleep replaces real timers for fault delays and retry back-off in
	// tests; nil uses timers.
	Sleep func(ctx context.Context, d time.Duration) error
	// NetHTTP1 serves every HTTP/1 request with net/http's server instead
	// of the lean path for keep-alive requests without a body (benchmarks
	// compare the two).
	NetHTTP1 bool
	// Observe builds the Observer for one HCM config (telemetry: metrics,
	// its access_log and tracing). nil: no observer, and access_log or
	// tracing in the config is rejected.
	Observe func(cfg *hcmv3.HttpConnectionManager) (Observer, error)
	// Counters receives filter stats (rbac.allowed …); nil: not exported.
	Counters *filter.Counters
	// OwnHTTP2 serves downstream HTTP/2 with weft's own server (h2srv.go)
	// instead of x/net's.
	OwnHTTP2 bool
}

// Observer sees every request of a Manager (telemetry). Methods run on
// the request's goroutine, must not block, and may edit the headers they
// are given (metadata exchange, trace propagation).
type Observer interface {
	// Request: after the connection manager's header rules, before routing.
	Request(r *http.Request, info *StreamInfo)
	// Response: before the final response headers are written.
	Response(h http.Header, info *StreamInfo)
	// Complete: after the response ended, before OnComplete.
	Complete(info *StreamInfo)
}

// Manager serves HTTP on downstream connections for one HCM config.
type Manager struct {
	log        *slog.Logger
	env        Env
	rdsName    string
	table      *route.Table // inline route_config
	filters    []filter.Filter
	fcfg       filter.Config
	onComplete func(*StreamInfo)
	obs        Observer

	codec         hcmv3.HttpConnectionManager_CodecType
	useRemote     bool
	skipXFF       bool
	xffHops       uint32
	genID         bool
	serverName    string
	serverMode    hcmv3.HttpConnectionManager_ServerHeaderTransformation
	normalizePath bool
	mergeSlashes  bool
	statPrefix    string
	idInResponse  bool
	xfcc          xfccConfig
	// requestTimeout bounds receiving a request body (Envoy's
	// request_timeout: armed at the headers, disarmed when the body ends or
	// the response starts). 0: none.
	requestTimeout time.Duration
	maxHeaders     int // Envoy's max_headers_count, default 100
	underscores    corev3.HttpProtocolOptions_HeadersWithUnderscoresAction
	acceptHTTP10   bool
	defaultHost10  string

	h1        *http.Server
	drainOnce sync.Once
	draining  atomic.Bool
	// retiring: a listener update replaced this manager; connections close
	// after their current response (see Retire).
	retireOnce sync.Once
	retiring   atomic.Bool
	idleClosed atomic.Bool // CloseIdle ended the drain period
	h2         *http2.Server
	// h2hook carries the HTTP/2 server's graceful-shutdown hook, so that
	// Retire and Drain can send GOAWAY on this manager's h2 connections
	// without shutting m.h1 down.
	h2hook  *http.Server
	streams sync.Pool
	ups     *upstreams
	// Shared single-value header slices (len == cap, so appends copy).
	serverHdr []string
	// The lean HTTP/1 path (fast.go): off with Options.NetHTTP1; its open
	// connections, for Drain.
	noFast bool
	// idleHandoff: see defaultIdleHandoff (tests shorten it).
	idleHandoff time.Duration
	parker      *park.Waiter // idle connections without a goroutine (park.go); nil: none
	fastMu      sync.Mutex
	fast        map[*fastConn]struct{}
	ownH2       bool   // Options.OwnHTTP2
	own         h2sSet // its open connections
}

// New validates and compiles an HCM config. The error names the field
// weft-proxy cannot honour; the caller NACKs the listener with it.
func New(cfg *hcmv3.HttpConnectionManager, env Env, opts Options) (*Manager, error) {
	const p = "http_connection_manager"
	if cfg == nil {
		return nil, fmt.Errorf("%s: missing config", p)
	}
	if err := xdsfield.Check(cfg, p, "codec_type", "stat_prefix", "rds", "route_config", "http_filters",
		"upgrade_configs", "use_remote_address", "xff_num_trusted_hops", "skip_xff_append",
		"generate_request_id", "stream_idle_timeout", "request_timeout", "common_http_protocol_options",
		"max_request_headers_kb", "http2_protocol_options", "http_protocol_options", "normalize_path",
		"merge_slashes", "server_name", "server_header_transformation", "path_with_escaped_slashes_action",
		"preserve_external_request_id", "always_set_request_id_in_response", "request_headers_timeout",
		"drain_timeout", "delayed_close_timeout", "stream_error_on_invalid_http_message", "access_log", "tracing",
		"forward_client_cert_details", "set_current_client_cert_details"); err != nil {
		return nil, err
	}
	if opts.Observe == nil && len(cfg.GetAccessLog()) > 0 {
		return nil, fmt.Errorf("%s.access_log: access_log and tracing need telemetry, which this proxy was built without", p)
	}
	if opts.Observe == nil && cfg.GetTracing() != nil {
		return nil, fmt.Errorf("%s.tracing: access_log and tracing need telemetry, which this proxy was built without", p)
	}
	m := &Manager{log: opts.Log, env: env, onComplete: opts.OnComplete, codec: cfg.GetCodecType(),
		useRemote: cfg.GetUseRemoteAddress().GetValue(), skipXFF: cfg.GetSkipXffAppend(),
		xffHops: cfg.GetXffNumTrustedHops(), genID: cfg.GetGenerateRequestId() == nil || cfg.GetGenerateRequestId().GetValue(),
		serverName: cfg.GetServerName(), serverMode: cfg.GetServerHeaderTransformation(),
		normalizePath: cfg.GetNormalizePath().GetValue(), mergeSlashes: cfg.GetMergeSlashes(),
		statPrefix: cfg.GetStatPrefix(), maxHeaders: 100, noFast: opts.NetHTTP1, ownH2: opts.OwnHTTP2,
		idleHandoff: defaultIdleHandoff, parker: sharedParker()}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if err := m.compileXFCC(cfg, p); err != nil {
		return nil, err
	}
	if m.serverName == "" {
		m.serverName = "envoy"
	}
	m.serverHdr = []string{m.serverName}
	if env == nil {
		return nil, fmt.Errorf("%s: no environment", p)
	}
	m.ups = &upstreams{env}
	switch m.codec {
	case hcmv3.HttpConnectionManager_AUTO, hcmv3.HttpConnectionManager_HTTP1, hcmv3.HttpConnectionManager_HTTP2:
	default:
		return nil, fmt.Errorf("%s.codec_type: %v not supported by weft-proxy", p, m.codec)
	}
	switch rs := cfg.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if err := xdsfield.Check(rs.Rds, p+".rds", "config_source", "route_config_name"); err != nil {
			return nil, err
		}
		if cs := rs.Rds.GetConfigSource(); cs.GetAds() == nil {
			return nil, fmt.Errorf("%s.rds.config_source: only ads is supported by weft-proxy", p)
		}
		if rs.Rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("%s.rds.route_config_name: empty", p)
		}
		m.rdsName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := route.Compile(rs.RouteConfig)
		if err != nil {
			return nil, fmt.Errorf("%s.route_config: %w", p, err)
		}
		m.table = t
	default:
		return nil, fmt.Errorf("%s: rds or route_config is required", p)
	}
	switch cfg.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		// Istio's DECODE_AND_MERGE_SLASHES. Normalization works on the
		// decoded path and forwards it re-encoded (%2F and %5C arrive
		// upstream as / and \), so with normalization on this is what
		// weft-proxy does already.
		if !m.normalizePath && !m.mergeSlashes {
			return nil, fmt.Errorf("%s.path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD needs normalize_path or merge_slashes in weft-proxy", p)
		}
	default:
		return nil, fmt.Errorf("%s.path_with_escaped_slashes_action: %v not supported by weft-proxy", p, cfg.GetPathWithEscapedSlashesAction())
	}
	m.idInResponse = cfg.GetAlwaysSetRequestIdInResponse()
	m.requestTimeout = route.Dur(cfg.GetRequestTimeout())
	m.fcfg.TrustEnvoyHeaders = !m.useRemote
	m.fcfg.StreamIdleTimeout = 5 * time.Minute // Envoy's default
	if cfg.GetStreamIdleTimeout() != nil {
		m.fcfg.StreamIdleTimeout = route.Dur(cfg.GetStreamIdleTimeout())
	}
	m.fcfg.Upgrades = map[string]bool{}
	for i, u := range cfg.GetUpgradeConfigs() {
		up := fmt.Sprintf("%s.upgrade_configs[%d]", p, i)
		if err := xdsfield.Check(u, up, "upgrade_type", "enabled"); err != nil {
			return nil, err
		}
		m.fcfg.Upgrades[lower(u.GetUpgradeType())] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	if err := m.compileFilters(cfg.GetHttpFilters(), opts, p+".http_filters"); err != nil {
		return nil, err
	}
	if err := m.compileServers(cfg, p); err != nil {
		return nil, err
	}
	if opts.Observe != nil {
		obs, err := opts.Observe(cfg)
		if err != nil {
			return nil, err
		}
		m.obs = obs
	}
	m.streams.New = func() any { return new(stream) }
	return m, nil
}

func (m *Manager) compileServers(cfg *hcmv3.HttpConnectionManager, p string) error {
	kb := cfg.GetMaxRequestHeadersKb().GetValue()
	if kb == 0 {
		kb = 60 // Envoy's default
	}
	if kb > 8192 {
		return fmt.Errorf("%s.max_request_headers_kb: %d exceeds 8192", p, kb)
	}
	idle := time.Hour // Envoy's default connection idle timeout
	if c := cfg.GetCommonHttpProtocolOptions(); c != nil {
		if err := xdsfield.Check(c, p+".common_http_protocol_options", "idle_timeout",
			"max_headers_count", "headers_with_underscores_action", "max_stream_duration"); err != nil {
			return err
		}
		if c.GetIdleTimeout() != nil {
			idle = route.Dur(c.GetIdleTimeout()) // 0 disables
		}
		if c.GetMaxHeadersCount() != nil {
			m.maxHeaders = int(c.GetMaxHeadersCount().GetValue())
		}
		m.underscores = c.GetHeadersWithUnderscoresAction()
		m.fcfg.MaxStreamDuration = route.Dur(c.GetMaxStreamDuration())
	}
	if o := cfg.GetHttpProtocolOptions(); o != nil {
		if err := xdsfield.Check(o, p+".http_protocol_options", "accept_http_10", "allow_absolute_url",
			"default_host_for_http_10"); err != nil {
			return err
		}
		if o.GetAllowAbsoluteUrl() != nil && !o.GetAllowAbsoluteUrl().GetValue() {
			return fmt.Errorf("%s.http_protocol_options.allow_absolute_url: false is not supported by weft-proxy", p)
		}
		m.acceptHTTP10, m.defaultHost10 = o.GetAcceptHttp_10(), o.GetDefaultHostForHttp_10()
	}
	// Go's limit covers the request line and headers plus 4 KiB of slack;
	// take the slack off so the whole block is bounded by the config.
	maxHdr := int(kb)*1024 - 4096
	if maxHdr < 1024 {
		maxHdr = 1024
	}
	headers := route.Dur(cfg.GetRequestHeadersTimeout()) // 0 disables
	if cfg.GetRequestHeadersTimeout() == nil && m.useRemote {
		// A gateway (use_remote_address: Istio sets it on gateways) faces
		// clients it does not know: slow header senders (slowloris) are
		// closed. Envoy has no default; a sidecar keeps none.
		headers = GatewayRequestHeadersTimeout
	}
	m.h1 = &http.Server{Handler: m, MaxHeaderBytes: maxHdr, IdleTimeout: idle,
		ReadHeaderTimeout: headers,
		ConnContext:       connContext,
		ErrorLog:          log.New(slogWriter{m.log}, "", 0)}
	h2, err := m.http2Server(cfg.GetHttp2ProtocolOptions(), idle, p+".http2_protocol_options")
	if err != nil {
		return err
	}
	m.h2 = h2
	// Registers the HTTP/2 connections with h2hook's shutdown (GOAWAY).
	m.h2hook = &http.Server{ErrorLog: m.h1.ErrorLog}
	if err := http2.ConfigureServer(m.h2hook, m.h2); err != nil {
		return fmt.Errorf("%s: configuring HTTP/2: %w", p, err)
	}
	return nil
}

// HTTP/2 defaults where Envoy's are unbounded (max_concurrent_streams
// 2^31-1, 256 MiB windows): Envoy's own edge recommendation for gateways
// (use_remote_address), a bounded stream count and Go's 1 MiB windows for
// sidecars. x/net starts at most max_concurrent_streams handlers per
// connection and ends a connection that queues more, so an unbounded value
// would also turn off its Rapid Reset (CVE-2023-44487) mitigation.
const (
	SidecarMaxConcurrentStreams    = 1024
	GatewayMaxConcurrentStreams    = 100      // Envoy edge best practice
	GatewayInitialStreamWindow     = 64 << 10 // Envoy edge best practice
	GatewayInitialConnectionWindow = 1 << 20  // Envoy edge best practice
	minWindow                      = 65535
	maxHTTP2Value                  = 1<<31 - 1
)

// http2Server applies http2_protocol_options (nil: defaults).
func (m *Manager) http2Server(o *corev3.Http2ProtocolOptions, idle time.Duration, p string) (*http2.Server, error) {
	h2 := &http2.Server{IdleTimeout: idle, MaxConcurrentStreams: SidecarMaxConcurrentStreams}
	if m.useRemote {
		h2.MaxConcurrentStreams = GatewayMaxConcurrentStreams
		h2.MaxUploadBufferPerStream = GatewayInitialStreamWindow
		h2.MaxUploadBufferPerConnection = GatewayInitialConnectionWindow
	}
	if o == nil {
		return h2, nil
	}
	if err := xdsfield.Check(o, p, "max_concurrent_streams", "initial_stream_window_size",
		"initial_connection_window_size", "allow_connect", "hpack_table_size", "connection_keepalive"); err != nil {
		return nil, err
	}
	if v := o.GetMaxConcurrentStreams(); v != nil {
		if v.GetValue() < 1 || v.GetValue() > maxHTTP2Value {
			return nil, fmt.Errorf("%s.max_concurrent_streams: %d is outside [1, 2147483647]", p, v.GetValue())
		}
		h2.MaxConcurrentStreams = v.GetValue()
	}
	if v := o.GetInitialStreamWindowSize(); v != nil {
		if v.GetValue() < minWindow || v.GetValue() > maxHTTP2Value {
			return nil, fmt.Errorf("%s.initial_stream_window_size: %d is outside [65535, 2147483647]", p, v.GetValue())
		}
		h2.MaxUploadBufferPerStream = int32(v.GetValue())
	}
	if v := o.GetInitialConnectionWindowSize(); v != nil {
		if v.GetValue() < minWindow || v.GetValue() > maxHTTP2Value {
			return nil, fmt.Errorf("%s.initial_connection_window_size: %d is outside [65535, 2147483647]", p, v.GetValue())
		}
		h2.MaxUploadBufferPerConnection = int32(v.GetValue())
	}
	if v := o.GetHpackTableSize(); v != nil {
		// The dynamic table the peer's encoder may use (our
		// SETTINGS_HEADER_TABLE_SIZE), as Envoy's hpack_table_size.
		h2.MaxDecoderHeaderTableSize = v.GetValue()
		if v.GetValue() == 0 {
			// 0 disables compression in Envoy; x/net reads 0 as its
			// default, and a table of one octet holds no entry.
			h2.MaxDecoderHeaderTableSize = 1
		}
	}
	if k := o.GetConnectionKeepalive(); k != nil {
		if err := xdsfield.Check(k, p+".connection_keepalive", "interval", "timeout"); err != nil {
			return nil, err
		}
		h2.ReadIdleTimeout = route.Dur(k.GetInterval())
		h2.PingTimeout = route.Dur(k.GetTimeout())
	}
	return h2, nil
}

// GatewayRequestHeadersTimeout is the request_headers_timeout of a
// connection manager with use_remote_address that does not set one.
const GatewayRequestHeadersTimeout = 10 * time.Second

// Drain ends the manager's connections now, gracefully where it can:
// idle HTTP/1 connections close, busy ones close after their response
// ("Connection: close"), HTTP/2 connections get GOAWAY and finish their
// streams. The listener closes whatever is left when its drain timeout
// passes. New connections are refused. It ends a drain period (listener
// removed, proxy stopping).
func (m *Manager) Drain() {
	m.drainOnce.Do(func() {
		m.draining.Store(true)
		m.goAway()
		m.drainFast()
		go m.h1.Shutdown(context.Background())
	})
}

// Retire starts a drain period because a listener update replaced this
// manager, or the proxy is shutting down (listener.Manager.StartDrain), as
// Envoy drains: every HTTP/1 response from now on carries "Connection:
// close", HTTP/2 connections get GOAWAY at once and finish their streams,
// and idle HTTP/1 connections stay open until CloseIdle ends the drain
// period. Closing them at once made the other side's pool send into
// connections being closed (issue 18: 1.3 % of POSTs failed under config
// churn). Connections it is still handed are served, draining too.
func (m *Manager) Retire() {
	m.retireOnce.Do(func() {
		m.retiring.Store(true)
		m.goAway()
	})
}

// CloseIdle ends a drain period started by Retire: connections waiting for
// a request close now (busy ones still close after their response).
func (m *Manager) CloseIdle() {
	m.retiring.Store(true)
	m.idleClosed.Store(true)
	m.h1.SetKeepAlivesEnabled(false) // also closes net/http's idle ones
	m.drainFast()
}

// goAway sends GOAWAY on the HTTP/2 connections open now; ones that start
// later get it with their first response (see respWriter).
func (m *Manager) goAway() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // h2hook tracks no connections: run the hooks, do not wait
	m.h2hook.Shutdown(ctx)
	m.ownGoAway()
}

// closing reports whether responses should end their connection.
func (m *Manager) closing() bool { return m.draining.Load() || m.retiring.Load() }

// RouteConfigName is the RDS name this manager reads ("" for inline).
func (m *Manager) RouteConfigName() string { return m.rdsName }

// StatPrefix is the configured stat_prefix.
func (m *Manager) StatPrefix() string { return m.statPrefix }

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Debug("http server", "msg", string(b))
	return len(b), nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
