package translate

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/accesslog"
)

// Access logs, the way Istio emits them: an envoy.access_loggers.file
// entry in every HCM and tcp_proxy. Sources, most specific first: the
// Telemetry API (workload selector > namespace > root namespace) with
// provider "envoy" or a mesh extensionProvider envoyFileAccessLog; else
// MeshConfig accessLogFile / accessLogEncoding / accessLogFormat.

const fileAccessLogName = "envoy.access_loggers.file"

// logSpec is one access log to emit, with the directions it applies to.
type logSpec struct {
	log            *accesslogv3.AccessLog
	client, server bool
}

// applyTelemetry adds access logs and tracing to every HCM (and access
// logs to every tcp_proxy) built.
func (b *builder) applyTelemetry() {
	specs := b.accessLogs()
	tracing := b.tracing()
	if len(specs) == 0 && tracing == nil {
		return
	}
	for _, n := range sortedKeys(b.listeners) {
		l := b.listeners[n]
		chains := append([]*listenerv3.FilterChain(nil), l.GetFilterChains()...)
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				b.addTelemetry(f, specs, tracing)
			}
		}
	}
}

func (b *builder) addTelemetry(f *listenerv3.Filter, specs []logSpec, tracing *traceSpec) {
	tc := f.GetTypedConfig()
	if tc == nil {
		return
	}
	pick := func(server bool) []*accesslogv3.AccessLog {
		var out []*accesslogv3.AccessLog
		for _, s := range specs {
			if (server && s.server) || (!server && s.client) {
				out = append(out, s.log)
			}
		}
		return out
	}
	gateway := b.p.Meta.Type == "router"
	switch f.GetName() {
	case hcmFilterName:
		h := &hcmv3.HttpConnectionManager{}
		if tc.UnmarshalTo(h) != nil {
			return
		}
		// Gateways log as clients (Istio: CLIENT mode covers gateways).
		server := !gateway && strings.HasPrefix(h.GetStatPrefix(), "inbound")
		h.AccessLog = pick(server)
		if tracing != nil && ((server && tracing.server) || (!server && tracing.client)) {
			h.Tracing = tracing.hcm
		}
		if len(h.AccessLog) > 0 || h.Tracing != nil {
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(h)}
		}
	case tcpFilterName:
		t := &tcpv3.TcpProxy{}
		if tc.UnmarshalTo(t) != nil {
			return
		}
		t.AccessLog = pick(!gateway && strings.HasPrefix(t.GetStatPrefix(), "inbound"))
		if len(t.AccessLog) > 0 {
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(t)}
		}
	}
}

// telemetryFor returns the Telemetry resources' access logging that
// applies to the proxy: workload-selected in its namespace, else its
// namespace's, else the root namespace's (first by name when several).
func (b *builder) telemetryLogging() ([]*telemetryapi.AccessLogging, bool) {
	ns, root := b.p.Meta.Namespace, b.rootNamespace()
	var workload, namespace, mesh []*telemetryapi.AccessLogging
	var hasW, hasN, hasM bool
	for _, t := range b.snap.Telemetries {
		if t == nil || len(t.Spec.GetAccessLogging()) == 0 {
			continue
		}
		sel := t.Spec.GetSelector()
		switch {
		case t.Namespace == ns && sel != nil && len(sel.GetMatchLabels()) > 0:
			if !hasW && labelsMatch(sel.GetMatchLabels(), b.p.Meta.Labels) {
				workload, hasW = t.Spec.GetAccessLogging(), true
			}
		case t.Namespace == ns && sel == nil:
			if !hasN {
				namespace, hasN = t.Spec.GetAccessLogging(), true
			}
		case t.Namespace == root && sel == nil:
			if !hasM {
				mesh, hasM = t.Spec.GetAccessLogging(), true
			}
		}
	}
	switch {
	case hasW:
		return workload, true
	case hasN:
		return namespace, true
	case hasM:
		return mesh, true
	}
	return nil, false
}

func (b *builder) accessLogs() []logSpec {
	if cfgs, ok := b.telemetryLogging(); ok {
		var out []logSpec
		for _, c := range cfgs {
			if c.GetDisabled().GetValue() {
				continue
			}
			client, server := true, true
			switch c.GetMatch().GetMode() {
			case telemetryapi.WorkloadMode_CLIENT:
				server = false
			case telemetryapi.WorkloadMode_SERVER:
				client = false
			}
			providers := c.GetProviders()
			names := make([]string, 0, len(providers))
			for _, p := range providers {
				names = append(names, p.GetName())
			}
			if len(names) == 0 {
				names = b.mesh.GetDefaultProviders().GetAccessLogging()
			}
			if len(names) == 0 {
				names = []string{"envoy"}
			}
			for _, n := range names {
				al := b.providerLog(n)
				if al == nil {
					continue
				}
				al.Filter = celFilter(c.GetFilter().GetExpression())
				out = append(out, logSpec{log: al, client: client, server: server})
			}
		}
		return out
	}
	if path := b.mesh.GetAccessLogFile(); path != "" {
		var al *accesslogv3.AccessLog
		if b.mesh.GetAccessLogEncoding() == meshv1alpha1.MeshConfig_JSON {
			al = fileLog(path, "", jsonFormat(b.mesh.GetAccessLogFormat()))
		} else {
			format := b.mesh.GetAccessLogFormat()
			if format == "" {
				format = accesslog.TextFormat
			} else if !strings.HasSuffix(format, "\n") {
				format += "\n"
			}
			al = fileLog(path, format, nil)
		}
		return []logSpec{{log: al, client: true, server: true}}
	}
	return nil
}

// providerLog resolves a provider name: a mesh extensionProvider with
// envoyFileAccessLog, or Istio's built-in "envoy" (/dev/stdout, text).
func (b *builder) providerLog(name string) *accesslogv3.AccessLog {
	for _, p := range b.mesh.GetExtensionProviders() {
		if p.GetName() != name {
			continue
		}
		fp := p.GetEnvoyFileAccessLog()
		if fp == nil {
			return nil // another kind of provider (OTel, ALS): not implemented
		}
		path := fp.GetPath()
		if path == "" {
			path = "/dev/stdout"
		}
		if l := fp.GetLogFormat().GetLabels(); l != nil {
			m := map[string]string{}
			for k, v := range l.GetFields() {
				m[k] = v.GetStringValue()
			}
			return fileLog(path, "", m)
		}
		format := fp.GetLogFormat().GetText()
		if format == "" {
			format = accesslog.TextFormat
		} else if !strings.HasSuffix(format, "\n") {
			format += "\n"
		}
		return fileLog(path, format, nil)
	}
	if name == "envoy" {
		return fileLog("/dev/stdout", accesslog.TextFormat, nil)
	}
	return nil
}

// jsonFormat is Istio's default JSON keys, or a user JSON object of
// key → command (MeshConfig accessLogFormat with JSON encoding).
func jsonFormat(user string) map[string]string {
	if user != "" {
		var s structpb.Struct
		if s.UnmarshalJSON([]byte(user)) == nil {
			m := map[string]string{}
			for k, v := range s.GetFields() {
				m[k] = v.GetStringValue()
			}
			return m
		}
	}
	return accesslog.JSONFormat()
}

func fileLog(path, text string, json map[string]string) *accesslogv3.AccessLog {
	sf := &corev3.SubstitutionFormatString{}
	if json != nil {
		keys := make([]string, 0, len(json))
		for k := range json {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		f := map[string]*structpb.Value{}
		for _, k := range keys {
			f[k] = structpb.NewStringValue(json[k])
		}
		sf.Format = &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: f}}
	} else {
		sf.Format = &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: text}}}
	}
	return &accesslogv3.AccessLog{Name: fileAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{
		TypedConfig: toAny(&filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: sf}})}}
}

var celCompare = regexp.MustCompile(`^\s*response\.code\s*(>=|<=|==|!=|>|<)\s*(\d{1,3})\s*$`)

// celFilter turns the simple CEL expressions Telemetry users write about
// the response code into Envoy's status_code_filter. Other expressions
// would need a CEL evaluator (Istio emits envoy's CEL extension filter);
// they are not emitted, so such a log records every request.
func celFilter(expr string) *accesslogv3.AccessLogFilter {
	m := celCompare.FindStringSubmatch(expr)
	if m == nil {
		return nil
	}
	n, _ := strconv.Atoi(m[2])
	op := accesslogv3.ComparisonFilter_EQ
	switch m[1] {
	case ">=":
		op = accesslogv3.ComparisonFilter_GE
	case "<=":
		op = accesslogv3.ComparisonFilter_LE
	case "!=":
		op = accesslogv3.ComparisonFilter_NE
	case ">":
		op, n = accesslogv3.ComparisonFilter_GE, n+1
	case "<":
		op, n = accesslogv3.ComparisonFilter_LE, n-1
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
		StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{Op: op,
			Value: &corev3.RuntimeUInt32{DefaultValue: uint32(max(n, 0)), RuntimeKey: "access_log.status_code"}}}}}
}

// traceSpec is the tracing config for this proxy's HCMs.
type traceSpec struct {
	hcm            *hcmv3.HttpConnectionManager_Tracing
	client, server bool
}

// tracing follows Istio: the Telemetry API's tracing (most specific
// resource), else MeshConfig defaultProviders.tracing; the provider is an
// extensionProviders opentelemetry entry; sampling is the Telemetry's
// randomSamplingPercentage, else defaultConfig.tracing.sampling, else 1%.
// Nothing is emitted when the collector's service has no cluster here.
func (b *builder) tracing() *traceSpec {
	var names []string
	percent := b.mesh.GetDefaultConfig().GetTracing().GetSampling()
	if percent == 0 {
		percent = 1 // Istio's default
	}
	client, server := true, true
	if tr := b.telemetryTracing(); tr != nil {
		if tr.GetDisableSpanReporting().GetValue() {
			return nil
		}
		for _, p := range tr.GetProviders() {
			names = append(names, p.GetName())
		}
		if v := tr.GetRandomSamplingPercentage(); v != nil {
			percent = v.GetValue()
		}
		switch tr.GetMatch().GetMode() {
		case telemetryapi.WorkloadMode_CLIENT:
			server = false
		case telemetryapi.WorkloadMode_SERVER:
			client = false
		}
	}
	if len(names) == 0 {
		names = b.mesh.GetDefaultProviders().GetTracing()
	}
	for _, n := range names {
		for _, p := range b.mesh.GetExtensionProviders() {
			ot := p.GetOpentelemetry()
			if p.GetName() != n || ot == nil || ot.GetService() == "" || ot.GetPort() == 0 {
				continue
			}
			host := ot.GetService()
			if i := strings.IndexByte(host, '/'); i >= 0 {
				host = host[i+1:] // Istio accepts namespace/host
			}
			cluster := "outbound|" + strconv.Itoa(int(ot.GetPort())) + "||" + host
			if b.clusters[cluster] == nil {
				continue
			}
			oc := &tracev3.OpenTelemetryConfig{ServiceName: b.tracingServiceName()}
			if h := ot.GetHttp(); h != nil {
				path := h.GetPath()
				if !strings.HasPrefix(path, "/") {
					path = "/" + path
				}
				hs := &corev3.HttpService{HttpUri: &corev3.HttpUri{
					Uri:              "http://" + host + ":" + strconv.Itoa(int(ot.GetPort())) + path,
					HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster},
					Timeout:          h.GetTimeout()}}
				if hs.HttpUri.Timeout == nil {
					hs.HttpUri.Timeout = durationpb.New(3 * time.Second)
				}
				for _, hd := range h.GetHeaders() {
					hs.RequestHeadersToAdd = append(hs.RequestHeadersToAdd, &corev3.HeaderValueOption{
						Header: &corev3.HeaderValue{Key: hd.GetName(), Value: hd.GetValue()}})
				}
				oc.HttpService = hs
			} else {
				oc.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}}}
			}
			return &traceSpec{client: client, server: server, hcm: &hcmv3.HttpConnectionManager_Tracing{
				RandomSampling: &typev3.Percent{Value: percent},
				Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
					ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(oc)}}}}
		}
	}
	return nil
}

// tracingServiceName is Istio's default service name for spans:
// canonical service "." namespace.
func (b *builder) tracingServiceName() string {
	l := b.p.Meta.Labels
	svc := l["service.istio.io/canonical-name"]
	if svc == "" {
		svc = l["app.kubernetes.io/name"]
	}
	if svc == "" {
		svc = l["app"]
	}
	if svc == "" {
		svc = b.p.Meta.Name
	}
	return svc + "." + b.p.Meta.Namespace
}

// telemetryTracing is the first tracing entry of the most specific
// Telemetry resource that configures tracing for the proxy.
func (b *builder) telemetryTracing() *telemetryapi.Tracing {
	ns, root := b.p.Meta.Namespace, b.rootNamespace()
	var workload, namespace, mesh *telemetryapi.Tracing
	for _, t := range b.snap.Telemetries {
		if t == nil || len(t.Spec.GetTracing()) == 0 {
			continue
		}
		tr := t.Spec.GetTracing()[0]
		sel := t.Spec.GetSelector()
		switch {
		case t.Namespace == ns && sel != nil && len(sel.GetMatchLabels()) > 0:
			if workload == nil && labelsMatch(sel.GetMatchLabels(), b.p.Meta.Labels) {
				workload = tr
			}
		case t.Namespace == ns && sel == nil:
			if namespace == nil {
				namespace = tr
			}
		case t.Namespace == root && sel == nil:
			if mesh == nil {
				mesh = tr
			}
		}
	}
	switch {
	case workload != nil:
		return workload
	case namespace != nil:
		return namespace
	}
	return mesh
}
