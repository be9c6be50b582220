package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// ALPN values of Istio's mutual TLS (pilot/pkg/networking/core/listener.go).
var (
	// mtlsTCPALPNs: what a sidecar offers for TCP over mutual TLS.
	mtlsTCPALPNs = []string{"istio-peer-exchange", "istio"}
	// mtlsHTTPALPNs: what a sidecar offers for HTTP over mutual TLS
	// (Istio's istio.alpn filter replaces the cluster's ALPN with these).
	mtlsHTTPALPNs = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// allMTLSALPNs: every ALPN a mesh client may offer.
	allMTLSALPNs = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// inboundALPNs: what the inbound side offers back (Istio's
	// ALPNDownstreamWithMxc); a client offering none of them gets no ALPN.
	inboundALPNs = []string{"istio-peer-exchange", "h2", "http/1.1"}
)

const (
	tlsModeIstio = "istio"
	// transport_socket_matches names, as Istio.
	tsMatchIstio    = "tlsMode-istio"
	tsMatchDisabled = "tlsMode-disabled"
)

// autoMTLS reports whether a cluster to svc without DestinationRule TLS
// gets Istio's automatic mutual TLS: mesh enableAutoMtls (default on), a
// proxy that holds a workload certificate, and a service inside the mesh.
func (b *builder) autoMTLS(svc *model.Service) bool {
	if e := b.mesh.GetEnableAutoMtls(); e != nil && !e.GetValue() {
		return false
	}
	return b.p.Meta.MeshTLS && !svc.MeshExternal
}

// applyAutoMTLS sets transport_socket_matches on a cluster without
// DestinationRule TLS: ISTIO_MUTUAL to endpoints labelled tlsMode istio
// (they run a sidecar), plaintext to the rest, decided per endpoint as
// Istio does. Original-destination clusters have no endpoint metadata to
// match and stay plaintext, as in Istio.
func (b *builder) applyAutoMTLS(c *clusterv3.Cluster, svc *model.Service, port *model.Port, subset string, t *networking.ClientTLSSettings) {
	if t != nil || c.GetTransportSocket() != nil || !b.autoMTLS(svc) || c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		return
	}
	ts := b.upstreamTLS(svc, port, subset, &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL})
	if ts == nil {
		return
	}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name:            tsMatchIstio,
			Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": str(tlsModeIstio)}},
			TransportSocket: ts,
		},
		{
			Name:            tsMatchDisabled,
			Match:           &structpb.Struct{},
			TransportSocket: rawBufferSocket(),
		},
	}
}

func rawBufferSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.raw_buffer",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&rawbufferv3.RawBuffer{})},
	}
}

// inboundMTLSContext terminates Istio mutual TLS on an inbound chain: the
// workload certificate ("default"), peers verified against the mesh roots
// ("ROOTCA") and required to present a SPIFFE id of the mesh's trust
// domain (or an alias), as Istio's inbound validation does.
func (b *builder) inboundMTLSContext() *corev3.TransportSocket {
	var sans []*tlsv3.SubjectAltNameMatcher
	for _, td := range b.trustBundle() {
		sans = append(sans, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}},
		})
	}
	ctx := &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			AlpnProtocols:                  inboundALPNs,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef(sdsDefault)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
				ValidationContextSdsSecretConfig: sdsRef(sdsRootCA),
			}},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	}
	return tlsSocket(ctx)
}

func (b *builder) trustDomain() string {
	if td := b.mesh.GetTrustDomain(); td != "" {
		return td
	}
	return "cluster.local"
}

// chainKind is one inbound filter chain's shape under a mutual TLS mode.
type chainKind struct {
	http      bool     // HCM (else tcp_proxy)
	transport string   // "tls", "raw_buffer" or "" (any)
	alpn      []string // application_protocols to match
	terminate bool     // terminate Istio mutual TLS
	suffix    string   // chain name suffix
}

// inboundKinds are the chains for one port, following Istio's filter chain
// match options (pilot/pkg/networking/core/filterchain_options.go). proto
// is the port's protocol: HTTP, sniffed (auto) or TCP.
func inboundKinds(mode MTLSMode, proto protocol) []chainKind {
	httpPort, auto := proto.isHTTP(), proto == protoAuto
	switch mode {
	case MTLSStrict:
		switch {
		case httpPort:
			return []chainKind{{http: true, transport: "tls", terminate: true, suffix: "_mtls"}}
		case auto:
			return []chainKind{
				{http: true, transport: "tls", alpn: mtlsHTTPALPNs, terminate: true, suffix: "_mtls_http"},
				{transport: "tls", terminate: true, suffix: "_mtls"},
			}
		}
		return []chainKind{{transport: "tls", terminate: true, suffix: "_mtls"}}
	case MTLSPermissive:
		switch {
		case httpPort:
			return []chainKind{
				{http: true, transport: "tls", alpn: allMTLSALPNs, terminate: true, suffix: "_mtls"},
				{http: true, transport: "raw_buffer"},
			}
		case auto:
			return []chainKind{
				{http: true, transport: "tls", alpn: mtlsHTTPALPNs, terminate: true, suffix: "_mtls_http"},
				{http: true, transport: "raw_buffer", alpn: sniffedHTTP, suffix: "_http"},
				{transport: "tls", alpn: mtlsTCPALPNs, terminate: true, suffix: "_mtls"},
				{transport: "raw_buffer"},
				// One-way TLS from a client outside the mesh: passed through.
				{transport: "tls", suffix: "_tls"},
			}
		}
		return []chainKind{
			{transport: "tls", alpn: allMTLSALPNs, terminate: true, suffix: "_mtls"},
			{transport: "tls", suffix: "_tls"},
			{transport: "raw_buffer"},
		}
	}
	return nil
}

// securedInboundChains builds one port's chains for a STRICT or
// PERMISSIVE mode from the plaintext chain builders; match gives each
// chain its base match (capture: destination_port; explicit: none).
func (b *builder) securedInboundChains(mode MTLSMode, ip inboundPort, match func() *listenerv3.FilterChainMatch,
	httpChain func(mtls bool) *listenerv3.FilterChain, tcpChain func() *listenerv3.FilterChain) []*listenerv3.FilterChain {
	if mode == MTLSStrict && !b.p.Meta.MeshTLS {
		// No certificate to terminate mutual TLS with: the port gets no
		// chain at all, so every connection is refused at once (a chain
		// waiting for the secrets would keep an older config serving).
		return nil
	}
	var out []*listenerv3.FilterChain
	for _, k := range inboundKinds(mode, ip.proto) {
		var fc *listenerv3.FilterChain
		if k.http {
			fc = httpChain(k.terminate)
		} else {
			fc = tcpChain()
		}
		fc.Name = "inbound_0.0.0.0_" + itoa(ip.port) + k.suffix
		m := match()
		if m == nil {
			m = &listenerv3.FilterChainMatch{}
		}
		m.TransportProtocol = k.transport
		m.ApplicationProtocols = k.alpn
		fc.FilterChainMatch = m
		if k.terminate {
			fc.TransportSocket = b.inboundMTLSContext()
		}
		out = append(out, fc)
	}
	return out
}
