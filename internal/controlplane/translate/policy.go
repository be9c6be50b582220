package translate

import (
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// policy is a DestinationRule traffic policy after Istio's merge: subset
// fields replace top-level ones, port-level settings replace both.
type policy struct {
	lb      *networking.LoadBalancerSettings
	pool    *networking.ConnectionPoolSettings
	outlier *networking.OutlierDetection
	tls     *networking.ClientTLSSettings
}

func effectivePolicy(top, subset *networking.TrafficPolicy, port uint32) policy {
	var p policy
	p.apply(top, port)
	p.apply(subset, port)
	return p
}

func (p *policy) apply(tp *networking.TrafficPolicy, port uint32) {
	if tp == nil {
		return
	}
	if tp.LoadBalancer != nil {
		p.lb = tp.LoadBalancer
	}
	if tp.ConnectionPool != nil {
		p.pool = tp.ConnectionPool
	}
	if tp.OutlierDetection != nil {
		p.outlier = tp.OutlierDetection
	}
	if tp.Tls != nil {
		p.tls = tp.Tls
	}
	for _, pl := range tp.PortLevelSettings {
		if pl == nil {
			continue
		}
		if pl.GetPort().GetNumber() != port {
			continue
		}
		if pl.LoadBalancer != nil {
			p.lb = pl.LoadBalancer
		}
		if pl.ConnectionPool != nil {
			p.pool = pl.ConnectionPool
		}
		if pl.OutlierDetection != nil {
			p.outlier = pl.OutlierDetection
		}
		if pl.Tls != nil {
			p.tls = pl.Tls
		}
	}
}

func (p policy) passthroughLB() bool {
	return p.lb.GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH && p.lb.GetConsistentHash() == nil
}

// applyPolicy sets load balancing, connection pool, outlier detection,
// protocol options and upstream TLS on c.
func (b *builder) applyPolicy(c *clusterv3.Cluster, svc *model.Service, port *model.Port, subset string, pol policy) {
	proto := portProtocol(port)
	if c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
		applyLB(c, pol.lb)
	}
	http := applyPool(c, pol.pool)
	if pol.pool.GetHttp().GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && proto == protoHTTP {
		proto = protoHTTP2
	}
	if proto.isHTTP() || proto == protoAuto {
		c.TypedExtensionProtocolOptions = protocolOptions(proto, http)
	}
	applyOutlier(c, pol.outlier)
	if ts := b.upstreamTLS(svc, port, subset, pol.tls); ts != nil {
		c.TransportSocket = ts
	}
	b.applyAutoMTLS(c, svc, port, subset, pol.tls)
}

func applyLB(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		if ml := ch.GetMaglev(); ml != nil {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			if ml.TableSize > 0 {
				c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(ml.TableSize)}}
			}
			return
		}
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		size := ch.GetRingHash().GetMinimumRingSize()
		if size == 0 {
			size = ch.GetMinimumRingSize() // deprecated top-level field
		}
		if size == 0 {
			size = 1024 // Istio's default
		}
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(size)}}
		return
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case networking.LoadBalancerSettings_RANDOM:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	}
}

// applyPool maps connectionPool to circuit breakers and connect timeout,
// and returns the common HTTP protocol options it implies (nil if none).
func applyPool(c *clusterv3.Cluster, pool *networking.ConnectionPoolSettings) *corev3.HttpProtocolOptions {
	if pool == nil {
		return nil
	}
	t := c.CircuitBreakers.Thresholds[0]
	if tcp := pool.Tcp; tcp != nil {
		if tcp.MaxConnections > 0 {
			t.MaxConnections = u32(uint32(tcp.MaxConnections))
		}
		if tcp.ConnectTimeout != nil {
			c.ConnectTimeout = dur(tcp.ConnectTimeout.AsDuration())
		}
	}
	var common *corev3.HttpProtocolOptions
	if h := pool.Http; h != nil {
		if h.Http1MaxPendingRequests > 0 {
			t.MaxPendingRequests = u32(uint32(h.Http1MaxPendingRequests))
		}
		if h.Http2MaxRequests > 0 {
			t.MaxRequests = u32(uint32(h.Http2MaxRequests))
		}
		if h.MaxRetries > 0 {
			t.MaxRetries = u32(uint32(h.MaxRetries))
		}
		if h.IdleTimeout != nil || h.MaxRequestsPerConnection > 0 {
			common = &corev3.HttpProtocolOptions{}
			if h.IdleTimeout != nil {
				common.IdleTimeout = dur(h.IdleTimeout.AsDuration())
			}
			if h.MaxRequestsPerConnection > 0 {
				common.MaxRequestsPerConnection = u32(uint32(h.MaxRequestsPerConnection))
			}
		}
	}
	// tcp.maxConnectionDuration (Envoy max_connection_duration) is not in
	// the proxy contract; it is not emitted until weft-proxy supports it.
	return common
}

// protocolOptions is the upstream HTTP protocol: h2 for HTTP2/GRPC ports,
// the downstream protocol for sniffed ports, HTTP/1.1 otherwise.
func protocolOptions(proto protocol, common *corev3.HttpProtocolOptions) map[string]*anypb.Any {
	o := &httpv3.HttpProtocolOptions{CommonHttpProtocolOptions: common}
	switch proto {
	case protoHTTP2:
		o.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}}
	case protoAuto:
		o.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}}
	default:
		if common == nil {
			return nil // HTTP/1.1 with defaults needs no options
		}
		o.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": toAny(o)}
}

// applyOutlier follows Istio's translation: a configured error count is
// enforced 100%, success-rate ejection is off, and minHealthPercent becomes
// the panic threshold.
func applyOutlier(c *clusterv3.Cluster, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: u32(0)}
	enforce := func(v uint32) *wrapperspb.UInt32Value {
		if v > 0 {
			return u32(100)
		}
		return u32(0)
	}
	if v := o.Consecutive_5XxErrors; v != nil {
		out.Consecutive_5Xx = u32(v.Value)
		out.EnforcingConsecutive_5Xx = enforce(v.Value)
	} else if o.ConsecutiveErrors > 0 { // deprecated: Istio treats it as 5xx
		out.Consecutive_5Xx = u32(uint32(o.ConsecutiveErrors))
		out.EnforcingConsecutive_5Xx = u32(100)
	}
	if v := o.ConsecutiveGatewayErrors; v != nil {
		out.ConsecutiveGatewayFailure = u32(v.Value)
		out.EnforcingConsecutiveGatewayFailure = enforce(v.Value)
	}
	if o.Interval != nil {
		out.Interval = dur(o.Interval.AsDuration())
	}
	if o.BaseEjectionTime != nil {
		out.BaseEjectionTime = dur(o.BaseEjectionTime.AsDuration())
	}
	if o.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = u32(uint32(o.MaxEjectionPercent))
	}
	c.OutlierDetection = out
	if o.MinHealthPercent >= 0 {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: float64(o.MinHealthPercent)}}
	}
}

// hashPolicy turns a DestinationRule consistentHash key into route hash
// policies (Envoy hashes per route, Istio sets it from the destination's DR).
func hashPolicy(lb *networking.LoadBalancerSettings) []*routev3.RouteAction_HashPolicy {
	ch := lb.GetConsistentHash()
	if ch == nil {
		return nil
	}
	var hp *routev3.RouteAction_HashPolicy
	switch k := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(k.HttpHeaderName)}}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		ck := &routev3.RouteAction_HashPolicy_Cookie{Name: k.HttpCookie.GetName(), Path: k.HttpCookie.GetPath()}
		if k.HttpCookie.GetTtl() != nil {
			ck.Ttl = dur(k.HttpCookie.GetTtl().AsDuration())
		}
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: ck}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: k.HttpQueryParameterName}}}
	default:
		return nil
	}
	return []*routev3.RouteAction_HashPolicy{hp}
}
