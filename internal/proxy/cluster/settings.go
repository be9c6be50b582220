package cluster

import (
	"errors"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

type discovery uint8

const (
	discStatic discovery = iota
	discEDS
	discStrictDNS
	discLogicalDNS
	discOriginalDst
)

type lbPolicy uint8

const (
	lbRoundRobin lbPolicy = iota
	lbLeastRequest
	lbRandom
	lbRingHash
	lbMaglev
	lbClusterProvided
)

type protocol uint8

const (
	protoHTTP1 protocol = iota
	protoHTTP2
	protoDownstream // use_downstream_protocol_config: follow RequestOptions.Downstream
)

// settings is the validated, defaulted form of a Cluster resource.
type settings struct {
	disc           discovery
	lb             lbPolicy
	connectTimeout time.Duration

	// Circuit breakers (default priority).
	maxConnections, maxPending, maxRequests, maxRetries int64

	proto              protocol
	maxRequestsPerConn int           // 0: unlimited
	maxStreams         int           // HTTP/2 streams per connection; 0: the server's limit
	idleTimeout        time.Duration // 0: none (Envoy's default is 1h)

	panicThreshold   float64 // percent; 0 disables panic mode
	localityWeighted bool

	ringMin, ringMax uint64
	maglevSize       uint64
	lrChoices        int

	origUseHeader  bool
	origHeader     string
	origPortOverri uint32

	dnsRefresh time.Duration
	v4Only     bool

	keepAlive time.Duration // TCP keepalive idle time; 0: Go default

	tls     *tlsSettings // cluster transport_socket; nil: plaintext
	matches []tsMatch    // transport_socket_matches, in order

	outlier *outlierSettings // nil: no outlier detection

	services []Service // metadata istio.services
}

// compile validates a Cluster resource and fills Envoy's defaults.
func compile(pc *clusterv3.Cluster, secrets map[string]*tlsv3.Secret) (*settings, error) {
	if err := xdsfield.Check(pc, "", "name", "type", "eds_cluster_config", "connect_timeout", "lb_policy",
		"load_assignment", "circuit_breakers", "outlier_detection", "common_lb_config",
		"typed_extension_protocol_options", "transport_socket", "transport_socket_matches", "metadata",
		"ring_hash_lb_config", "maglev_lb_config", "original_dst_lb_config", "least_request_lb_config",
		"dns_refresh_rate", "dns_lookup_family", "respect_dns_ttl", "cleanup_interval", "alt_stat_name",
		"per_connection_buffer_limit_bytes", "upstream_connection_options", "max_requests_per_connection"); err != nil {
		return nil, err
	}
	s := &settings{
		connectTimeout: durOr(pc.GetConnectTimeout(), 5*time.Second),
		maxConnections: 1024, maxPending: 1024, maxRequests: 1024, maxRetries: 3,
		panicThreshold: 50,
		ringMin:        1024, ringMax: 8 * 1024 * 1024,
		maglevSize:  65537,
		lrChoices:   2,
		dnsRefresh:  durOr(pc.GetDnsRefreshRate(), 5*time.Second),
		idleTimeout: time.Hour,
	}
	if s.connectTimeout <= 0 {
		return nil, errors.New("connect_timeout: must be positive")
	}
	if s.dnsRefresh <= 0 {
		return nil, errors.New("dns_refresh_rate: must be positive")
	}
	switch pc.GetClusterDiscoveryType().(type) {
	case nil, *clusterv3.Cluster_Type:
	default:
		return nil, errors.New("cluster_type: custom cluster types are not supported")
	}
	switch pc.GetType() {
	case clusterv3.Cluster_STATIC:
		s.disc = discStatic
	case clusterv3.Cluster_EDS:
		s.disc = discEDS
		if err := xdsfield.Check(pc.GetEdsClusterConfig(), "eds_cluster_config.", "eds_config", "service_name"); err != nil {
			return nil, err
		}
	case clusterv3.Cluster_STRICT_DNS:
		s.disc = discStrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		s.disc = discLogicalDNS
	case clusterv3.Cluster_ORIGINAL_DST:
		s.disc = discOriginalDst
	default:
		return nil, fmt.Errorf("type: %v not supported", pc.GetType())
	}
	if pc.GetEdsClusterConfig() != nil && s.disc != discEDS {
		return nil, errors.New("eds_cluster_config: only valid for type EDS")
	}
	switch pc.GetDnsLookupFamily() {
	case clusterv3.Cluster_V4_ONLY:
		s.v4Only = true
	case clusterv3.Cluster_AUTO, clusterv3.Cluster_V4_PREFERRED, clusterv3.Cluster_ALL:
	default:
		return nil, fmt.Errorf("dns_lookup_family: %v not supported", pc.GetDnsLookupFamily())
	}

	if err := s.compileLB(pc); err != nil {
		return nil, err
	}
	if err := s.compileBreakers(pc.GetCircuitBreakers()); err != nil {
		return nil, err
	}
	// The deprecated cluster field; HttpProtocolOptions wins when both are set.
	s.maxRequestsPerConn = int(u32Or(pc.GetMaxRequestsPerConnection(), 0))
	if err := s.compileProtocol(pc); err != nil {
		return nil, err
	}
	if uco := pc.GetUpstreamConnectionOptions(); uco != nil {
		if err := xdsfield.Check(uco, "upstream_connection_options.", "tcp_keepalive"); err != nil {
			return nil, err
		}
		if t := uco.GetTcpKeepalive().GetKeepaliveTime(); t != nil {
			s.keepAlive = time.Duration(t.GetValue()) * time.Second
		}
	}
	od, err := compileOutlier(pc.GetOutlierDetection())
	if err != nil {
		return nil, fmt.Errorf("outlier_detection.%w", err)
	}
	s.outlier = od
	if err := s.compileTransport(pc, secrets); err != nil {
		return nil, err
	}
	s.services = istioServices(pc.GetMetadata())
	return s, nil
}

func (s *settings) compileLB(pc *clusterv3.Cluster) error {
	switch pc.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		s.lb = lbRoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		s.lb = lbLeastRequest
	case clusterv3.Cluster_RANDOM:
		s.lb = lbRandom
	case clusterv3.Cluster_RING_HASH:
		s.lb = lbRingHash
	case clusterv3.Cluster_MAGLEV:
		s.lb = lbMaglev
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		s.lb = lbClusterProvided
	default:
		return fmt.Errorf("lb_policy: %v not supported", pc.GetLbPolicy())
	}
	if s.disc == discOriginalDst && s.lb != lbClusterProvided {
		return errors.New("lb_policy: ORIGINAL_DST clusters require CLUSTER_PROVIDED")
	}
	if s.lb == lbClusterProvided && s.disc != discOriginalDst {
		return errors.New("lb_policy: CLUSTER_PROVIDED is only valid for ORIGINAL_DST clusters")
	}
	switch cfg := pc.GetLbConfig().(type) {
	case nil:
	case *clusterv3.Cluster_RingHashLbConfig_:
		r := cfg.RingHashLbConfig
		if err := xdsfield.Check(r, "ring_hash_lb_config.", "minimum_ring_size", "maximum_ring_size", "hash_function"); err != nil {
			return err
		}
		s.ringMin = u64Or(r.GetMinimumRingSize(), s.ringMin)
		s.ringMax = u64Or(r.GetMaximumRingSize(), s.ringMax)
		if s.ringMin == 0 || s.ringMin > s.ringMax || s.ringMax > 8*1024*1024 {
			return fmt.Errorf("ring_hash_lb_config: invalid ring size min %d max %d", s.ringMin, s.ringMax)
		}
	case *clusterv3.Cluster_MaglevLbConfig_:
		if err := xdsfield.Check(cfg.MaglevLbConfig, "maglev_lb_config.", "table_size"); err != nil {
			return err
		}
		s.maglevSize = u64Or(cfg.MaglevLbConfig.GetTableSize(), s.maglevSize)
		if !isPrime(s.maglevSize) || s.maglevSize > 5000011 {
			return fmt.Errorf("maglev_lb_config.table_size: %d must be a prime <= 5000011", s.maglevSize)
		}
	case *clusterv3.Cluster_LeastRequestLbConfig_:
		if err := xdsfield.Check(cfg.LeastRequestLbConfig, "least_request_lb_config.", "choice_count"); err != nil {
			return err
		}
		s.lrChoices = int(u32Or(cfg.LeastRequestLbConfig.GetChoiceCount(), 2))
		if s.lrChoices < 2 {
			return errors.New("least_request_lb_config.choice_count: must be >= 2")
		}
	case *clusterv3.Cluster_OriginalDstLbConfig_:
		o := cfg.OriginalDstLbConfig
		if err := xdsfield.Check(o, "original_dst_lb_config.", "use_http_header", "http_header_name", "upstream_port_override"); err != nil {
			return err
		}
		s.origUseHeader = o.GetUseHttpHeader()
		s.origHeader = o.GetHttpHeaderName()
		if s.origHeader == "" {
			s.origHeader = "x-envoy-original-dst-host"
		}
		s.origPortOverri = u32Or(o.GetUpstreamPortOverride(), 0)
		if s.origPortOverri > 65535 {
			return errors.New("original_dst_lb_config.upstream_port_override: out of range")
		}
	default:
		return fmt.Errorf("lb_config: %T not supported", cfg)
	}
	if cl := pc.GetCommonLbConfig(); cl != nil {
		if err := xdsfield.Check(cl, "common_lb_config.", "healthy_panic_threshold", "locality_weighted_lb_config"); err != nil {
			return err
		}
		if t := cl.GetHealthyPanicThreshold(); t != nil {
			s.panicThreshold = t.GetValue()
			if s.panicThreshold < 0 || s.panicThreshold > 100 {
				return errors.New("common_lb_config.healthy_panic_threshold: must be within [0, 100]")
			}
		}
		s.localityWeighted = cl.GetLocalityWeightedLbConfig() != nil
	}
	return nil
}

func (s *settings) compileBreakers(cb *clusterv3.CircuitBreakers) error {
	if cb == nil {
		return nil
	}
	if err := xdsfield.Check(cb, "circuit_breakers.", "thresholds"); err != nil {
		return err
	}
	for i, t := range cb.GetThresholds() {
		path := fmt.Sprintf("circuit_breakers.thresholds[%d].", i)
		if err := xdsfield.Check(t, path, "priority", "max_connections", "max_pending_requests", "max_requests",
			"max_retries", "track_remaining"); err != nil {
			return err
		}
		// Only the DEFAULT priority is used: the router never marks requests HIGH.
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		s.maxConnections = int64(u32Or(t.GetMaxConnections(), 1024))
		s.maxPending = int64(u32Or(t.GetMaxPendingRequests(), 1024))
		s.maxRequests = int64(u32Or(t.GetMaxRequests(), 1024))
		s.maxRetries = int64(u32Or(t.GetMaxRetries(), 3))
	}
	return nil
}

func (s *settings) compileProtocol(pc *clusterv3.Cluster) error {
	for k, a := range pc.GetTypedExtensionProtocolOptions() {
		path := fmt.Sprintf("typed_extension_protocol_options[%s]", k)
		if k != httpProtocolOptionsName {
			return fmt.Errorf("%s: not supported", path)
		}
		var o httpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&o); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := xdsfield.Check(&o, path+".", "common_http_protocol_options", "explicit_http_config",
			"use_downstream_protocol_config"); err != nil {
			return err
		}
		if c := o.GetCommonHttpProtocolOptions(); c != nil {
			if err := xdsfield.Check(c, path+".common_http_protocol_options.", "idle_timeout", "max_requests_per_connection"); err != nil {
				return err
			}
			if c.GetIdleTimeout() != nil {
				s.idleTimeout = c.GetIdleTimeout().AsDuration() // explicit 0 disables
			}
			if c.GetMaxRequestsPerConnection() != nil {
				s.maxRequestsPerConn = int(c.GetMaxRequestsPerConnection().GetValue())
			}
		}
		switch p := o.GetUpstreamProtocolOptions().(type) {
		case nil:
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			switch pc := p.ExplicitHttpConfig.GetProtocolConfig().(type) {
			case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions:
				s.proto = protoHTTP1
				if err := xdsfield.Check(pc.HttpProtocolOptions, path+".explicit_http_config.http_protocol_options."); err != nil {
					return err
				}
			case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions:
				s.proto = protoHTTP2
				if err := s.compileH2(pc.Http2ProtocolOptions, path+".explicit_http_config.http2_protocol_options."); err != nil {
					return err
				}
			default:
				return fmt.Errorf("%s.explicit_http_config: only http_protocol_options and http2_protocol_options are supported", path)
			}
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			s.proto = protoDownstream
			d := p.UseDownstreamProtocolConfig
			if err := xdsfield.Check(d, path+".use_downstream_protocol_config.", "http_protocol_options", "http2_protocol_options"); err != nil {
				return err
			}
			if err := xdsfield.Check(d.GetHttpProtocolOptions(), path+".use_downstream_protocol_config.http_protocol_options."); err != nil {
				return err
			}
			if err := s.compileH2(d.GetHttp2ProtocolOptions(), path+".use_downstream_protocol_config.http2_protocol_options."); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s.upstream_protocol_options: %T not supported", path, p)
		}
	}
	return nil
}

// compileH2 accepts max_concurrent_streams (enforced per connection by the
// pool, Istio's DestinationRule maxConcurrentStreams) and nothing else.
func (s *settings) compileH2(o *corev3.Http2ProtocolOptions, path string) error {
	if o == nil {
		return nil
	}
	if err := xdsfield.Check(o, path, "max_concurrent_streams"); err != nil {
		return err
	}
	s.maxStreams = int(u32Or(o.GetMaxConcurrentStreams(), 0))
	return nil
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
