package translate

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	hcmFilterName = "envoy.filters.network.http_connection_manager"
	tcpFilterName = "envoy.filters.network.tcp_proxy"
)

// sniffedHTTP are the application protocols http_inspector reports for
// plaintext HTTP; chains for auto-detected ports match on them.
var sniffedHTTP = []string{"http/1.0", "http/1.1", "h2c"}

// hcmOptions shape an http_connection_manager.
type hcmOptions struct {
	statPrefix string
	rds        string
	connect    bool // accept CONNECT (explicit proxy)
	gateway    bool // edge: trust the peer address, generate request ids
	// inboundMTLS: a sidecar inbound chain terminating mutual TLS; the
	// peer's certificate is forwarded in x-forwarded-client-cert, as Istio.
	inboundMTLS bool
}

// httpFilters is the fixed filter order every HCM uses.
func httpFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		{Name: filterFault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&faultv3.HTTPFault{})}},
		{Name: filterCors, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&corsv3.Cors{})}},
		{Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})}},
	}
}

func hcmConfig(o hcmOptions) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: o.statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: o.rds,
		}},
		HttpFilters:    httpFilters(),
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
		NormalizePath:  wrapperspb.Bool(true), // Istio's default path normalization (BASE)
	}
	if o.connect {
		h.UpgradeConfigs = append(h.UpgradeConfigs, &hcmv3.HttpConnectionManager_UpgradeConfig{UpgradeType: "CONNECT"})
	}
	if o.inboundMTLS {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true), Uri: true, Dns: true,
		}
	}
	if o.gateway {
		h.ServerName = "istio-envoy" // Istio's gateways answer with server: istio-envoy
		h.UseRemoteAddress = wrapperspb.Bool(true)
		h.GenerateRequestId = wrapperspb.Bool(true)
	}
	return h
}

func hcmFilter(o hcmOptions) *listenerv3.Filter {
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(hcmConfig(o))}}
}

// weightedCluster is one tcp_proxy destination.
type weightedCluster struct {
	name   string
	weight uint32
}

func tcpFilter(dests []weightedCluster) *listenerv3.Filter {
	t := &tcpv3.TcpProxy{}
	if len(dests) == 1 {
		t.StatPrefix = dests[0].name
		t.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: dests[0].name}
	} else {
		t.StatPrefix = "weighted"
		wc := &tcpv3.TcpProxy_WeightedCluster{}
		for _, d := range dests {
			wc.Clusters = append(wc.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: d.name, Weight: d.weight})
		}
		t.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listenerv3.Filter{Name: tcpFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(t)}}
}

func listenerFilters(names ...string) []*listenerv3.ListenerFilter {
	var out []*listenerv3.ListenerFilter
	for _, n := range names {
		var lf *listenerv3.ListenerFilter
		switch n {
		case "original_dst":
			lf = &listenerv3.ListenerFilter{Name: "envoy.filters.listener.original_dst", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&originaldstv3.OriginalDst{})}}
		case "tls_inspector":
			lf = &listenerv3.ListenerFilter{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&tlsinspectorv3.TlsInspector{})}}
		case "http_inspector":
			lf = &listenerv3.ListenerFilter{Name: "envoy.filters.listener.http_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&httpinspectorv3.HttpInspector{})}}
		}
		out = append(out, lf)
	}
	return out
}

// cidr parses an address or CIDR (ServiceEntry addresses may be either).
func cidr(s string) *corev3.CidrRange {
	if p, err := netip.ParsePrefix(s); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: u32(uint32(p.Bits()))}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: u32(uint32(a.BitLen()))}
	}
	return nil
}
