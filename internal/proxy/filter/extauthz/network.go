package extauthz

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	extauthznetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Network is envoy.filters.network.ext_authz: Istio's CUSTOM action on TCP
// chains (gRPC providers). A connection the network RBAC filter marked is
// checked once, before the next filter (tcp_proxy) sees it; a denied or
// unchecked (service unreachable, not fail-open) connection is closed.
type Network struct {
	log      *slog.Logger
	check    *grpcCheck
	timeout  time.Duration
	failOpen bool
	enabled  *enabledMatch
	next     listener.Handler
}

var _ listener.Chainer = (*Network)(nil)

// NewNetwork compiles the network ext_authz config.
func NewNetwork(cfg *extauthznetv3.ExtAuthz, o Options) (*Network, error) {
	const p = "ext_authz"
	if err := xdsfield.Check(cfg, p, "stat_prefix", "grpc_service", "failure_mode_allow", "transport_api_version",
		"filter_enabled_metadata", "include_peer_certificate"); err != nil {
		return nil, err
	}
	if o.Env == nil {
		return nil, fmt.Errorf("%s: no cluster environment", p)
	}
	gs := cfg.GetGrpcService()
	eg := gs.GetEnvoyGrpc()
	if eg == nil || eg.GetClusterName() == "" {
		return nil, fmt.Errorf("%s.grpc_service.envoy_grpc.cluster_name: required (google_grpc is not supported by weft-proxy)", p)
	}
	n := &Network{log: o.Log, failOpen: cfg.GetFailureModeAllow(), timeout: route.Dur(gs.GetTimeout())}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.timeout <= 0 {
		n.timeout = 200 * time.Millisecond
	}
	authority := eg.GetAuthority()
	if authority == "" {
		authority = eg.GetClusterName()
	}
	n.check = &grpcCheck{authority: authority, env: o.Env, cluster: eg.GetClusterName()}
	if m := cfg.GetFilterEnabledMetadata(); m != nil {
		if len(m.GetPath()) != 1 || m.GetValue().GetStringMatch() == nil {
			return nil, fmt.Errorf("%s.filter_enabled_metadata: only one path key with a string_match is supported by weft-proxy", p)
		}
		s, err := route.CompileStringMatch(m.GetValue().GetStringMatch(), p+".filter_enabled_metadata.value.string_match")
		if err != nil {
			return nil, err
		}
		n.enabled = &enabledMatch{filter: m.GetFilter(), key: m.GetPath()[0].GetKey(), s: s, invert: m.GetInvert()}
	}
	return n, nil
}

// Chain returns a copy of n handing allowed connections to next.
func (n *Network) Chain(next listener.Handler) listener.Handler {
	c := *n
	c.next = next
	return &c
}

// ServeConn checks a connection without metadata.
func (n *Network) ServeConn(c net.Conn, info *downstream.Info) { n.ServeConnMeta(c, info, nil) }

// ServeConnMeta checks the connection when enabled by meta.
func (n *Network) ServeConnMeta(c net.Conn, info *downstream.Info, meta *filter.Metadata) {
	if n.next == nil {
		c.Close()
		return
	}
	if n.enabled != nil && (meta == nil || !n.enabled.match(meta)) {
		n.next.ServeConn(c, info)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
	allowed, err := n.allowed(ctx, info)
	cancel()
	if err != nil {
		n.log.Warn("ext_authz check failed", "cluster", n.check.cluster, "err", err, "fail_open", n.failOpen)
		allowed = n.failOpen
	}
	if !allowed {
		c.Close()
		return
	}
	n.next.ServeConn(c, info)
}

func (n *Network) allowed(ctx context.Context, info *downstream.Info) (bool, error) {
	cc, err := n.check.client()
	if err != nil {
		return false, err
	}
	attrs := &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddr(info.Remote.String())},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddr(info.Local.String())},
	}
	if id, ok := info.PeerIdentity(); ok {
		attrs.Source.Principal = id.String()
	}
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, &authv3.CheckRequest{Attributes: attrs})
	if err != nil {
		return false, err
	}
	return codes.Code(resp.GetStatus().GetCode()) == codes.OK, nil
}
