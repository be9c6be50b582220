package translate

import (
	"net/netip"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// A Sidecar's ingress listeners replace the inbound ports Istio derives
// from the workload's services (pilot/pkg/networking/core/listener_inbound.go):
// each names the port traffic arrives on, the protocol, the endpoint it
// is forwarded to (defaultEndpoint: 127.0.0.1:PORT is the loopback,
// 0.0.0.0:PORT the workload's own address, empty the port itself on the
// workload) and the connection pool to the application (the listener's,
// else the Sidecar's inboundConnectionPool).

// ingressListeners returns the Sidecar's ingress listeners for this proxy
// (nil when no Sidecar with ingress applies).
func (b *builder) ingressListeners() []*networking.IstioIngressListener {
	if b.scope == nil {
		return nil
	}
	return b.scope.sidecar.Spec.Ingress
}

// sidecarIngressPorts are the inbound ports from the Sidecar's ingress
// listeners; ok is false when no Sidecar with ingress applies.
func (b *builder) sidecarIngressPorts() ([]inboundPort, bool) {
	ls := b.ingressListeners()
	if len(ls) == 0 {
		return nil, false
	}
	seen := map[uint32]bool{}
	var out []inboundPort
	for _, l := range ls {
		p := l.GetPort()
		if p == nil || p.Number == 0 || p.Number > 65535 || seen[p.Number] {
			continue
		}
		if _, _, ok := b.ingressEndpoint(l); !ok {
			continue // a unix socket endpoint: not something weft-proxy dials
		}
		seen[p.Number] = true
		out = append(out, inboundPort{p.Number, portProtocol(&model.Port{Name: p.Name, Protocol: p.Protocol})})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out, true
}

// ingressFor returns the ingress listener for port, nil if none.
func (b *builder) ingressFor(port uint32) *networking.IstioIngressListener {
	for _, l := range b.ingressListeners() {
		if l.GetPort().GetNumber() == port {
			return l
		}
	}
	return nil
}

// ingressEndpoint resolves defaultEndpoint to the address the inbound
// cluster dials. The workload's own address is the app address Weft
// already uses (capture: 127.0.0.1; explicit: the app's loopback IP).
func (b *builder) ingressEndpoint(l *networking.IstioIngressListener) (string, uint32, bool) {
	ep := l.GetDefaultEndpoint()
	if ep == "" {
		return b.appAddress(), l.GetPort().GetNumber(), true
	}
	if strings.HasPrefix(ep, "unix://") {
		return "", 0, false
	}
	// Istio accepts only 127.0.0.1:PORT, 0.0.0.0:PORT (and unix://) here;
	// netip keeps translate free of the net package.
	ap, err := netip.ParseAddrPort(ep)
	if err != nil || ap.Port() == 0 {
		return "", 0, false
	}
	host := ap.Addr().String()
	if ap.Addr().IsUnspecified() {
		host = b.appAddress()
	}
	return host, uint32(ap.Port()), true
}

// applySidecarIngress points the inbound cluster for port at the ingress
// listener's endpoint and applies its connection pool.
func (b *builder) applySidecarIngress(c *clusterv3.Cluster, port uint32, proto protocol) {
	if b.scope == nil {
		return
	}
	pool := b.scope.sidecar.Spec.InboundConnectionPool
	if l := b.ingressFor(port); l != nil {
		if host, p, ok := b.ingressEndpoint(l); ok {
			c.LoadAssignment.Endpoints = []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(host, p)},
			}}
		}
		if l.ConnectionPool != nil {
			pool = l.ConnectionPool
		}
	}
	if pool == nil {
		return
	}
	if common := applyPool(c, pool); common != nil && (proto.isHTTP() || proto == protoAuto) {
		c.TypedExtensionProtocolOptions = protocolOptions(proto, common)
	}
}

// ingressTLS is the TLS an ingress listener terminates, and the protocol
// behind it, as Istio (listener_inbound.go): only with
// ENABLE_TLS_ON_SIDECAR_INGRESS, and only where PeerAuthentication leaves
// the port plaintext (mode DISABLE); the chain then matches TLS and the
// protocol is the one after termination (HTTPS: HTTP, TLS: TCP). The
// certificate, key and CA are files on the workload's host, read by the
// proxy (BuildListenerTLSContext with the files as the proxy's own).
func (b *builder) ingressTLS(port uint32) (*networking.ServerTLSSettings, protocol) {
	if !b.snap.Features.TLSOnSidecarIngress {
		return nil, 0
	}
	l := b.ingressFor(port)
	if l.GetTls() == nil || b.inboundMode(port) != MTLSDisable {
		return nil, 0
	}
	switch strings.ToUpper(l.GetPort().GetProtocol()) {
	case "HTTPS":
		return l.GetTls(), protoHTTP
	case "TLS":
		return l.GetTls(), protoTCP
	}
	// Validation allows tls only on HTTPS and TLS ports.
	return nil, 0
}

// ingressBound is where a Sidecar ingress listener with captureMode NONE
// binds (Istio's getBindToPort and getFilterChainsByServicePort: its bind,
// else the workload's address), or, on a proxy without capture, the bind
// it names; ok is false when the port is served as usual.
func (b *builder) ingressBound(port uint32) (string, bool) {
	l := b.ingressFor(port)
	if l == nil {
		return "", false
	}
	if b.p.Meta.Capture && l.GetCaptureMode() != networking.CaptureMode_NONE {
		return "", false
	}
	if l.GetBind() != "" {
		return l.GetBind(), true
	}
	if !b.p.Meta.Capture {
		return "", false // explicit mode binds the workload address anyway
	}
	return b.bindIP(), true
}
