package rbac

import (
	"log/slog"
	"net"
	"strings"

	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Network is the compiled envoy.filters.network.rbac filter. It decides
// once per connection, before the next filter (tcp_proxy) sees it: a
// denied connection is closed.
type Network struct {
	rules, shadow *Engine
	stats         stats
	log           *slog.Logger
	next          listener.Handler
	shadowPrefix  string
}

// MetaHandler is a next network filter that reads the connection's
// dynamic metadata (ext_authz, enabled by CUSTOM's shadow rules).
type MetaHandler interface {
	ServeConnMeta(c net.Conn, info *downstream.Info, meta *filter.Metadata)
}

// NetworkMetadataNamespace is where the network filter records shadow
// results (Envoy's envoy.filters.network.rbac).
const NetworkMetadataNamespace = "envoy.filters.network.rbac"

var _ listener.Chainer = (*Network)(nil)

// NewNetwork compiles the network filter config (Options.StatPrefix is
// ignored: the config's stat_prefix names the stats).
func NewNetwork(cfg *rbactcpv3.RBAC, o Options) (*Network, error) {
	const p = "rbac"
	if err := xdsfield.Check(cfg, p, "rules", "stat_prefix", "shadow_rules", "shadow_rules_stat_prefix"); err != nil {
		return nil, err
	}
	if cfg.GetStatPrefix() == "" {
		return nil, errorf("%s.stat_prefix: required", p)
	}
	f := &Network{log: o.Log}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if f.rules, err = Compile(cfg.GetRules(), p+".rules"); err != nil {
		return nil, err
	}
	if f.shadow, err = Compile(cfg.GetShadowRules(), p+".shadow_rules"); err != nil {
		return nil, err
	}
	f.shadowPrefix = cfg.GetShadowRulesStatPrefix()
	o.StatPrefix = cfg.GetStatPrefix()
	f.stats = newStats(o, "", cfg.GetShadowRulesStatPrefix())
	return f, nil
}

// Chain returns a copy of f that hands allowed connections to next.
func (f *Network) Chain(next listener.Handler) listener.Handler {
	c := *f
	c.next = next
	return &c
}

// Allows evaluates a connection (tests, weft x authz).
func (f *Network) Allows(info *downstream.Info) bool {
	ok, _ := f.allows(info, nil)
	return ok
}

// Refuser is a next filter that logs a connection this filter denied
// (tcp_proxy's access log, as Envoy's shows RBAC denials).
type Refuser interface {
	Refuse(c net.Conn, info *downstream.Info, details string)
}

// deniedDetails is Envoy's connection termination details of a denial.
func deniedDetails(policy string) string {
	if policy == "" {
		policy = "none"
	}
	return "rbac_access_denied_matched_policy[" + policy + "]"
}

// allows evaluates the connection; on a denial it also returns the
// matched policy ("" when an ALLOW set matched nothing).
func (f *Network) allows(info *downstream.Info, meta *filter.Metadata) (bool, string) {
	in := Input{Conn: info}
	if f.shadow != nil {
		ok, pol := f.shadow.Eval(&in)
		if ok {
			f.stats.shadowAllowed.Add(1)
		} else {
			f.stats.shadowDenied.Add(1)
			if !strings.HasPrefix(f.shadowPrefix, "istio_ext_authz") {
				f.log.Info("rbac shadow denied connection (dry run, not enforced)", "policy", pol, "remote", info.Remote)
			}
		}
		if meta != nil && pol != "" {
			meta.SetField(NetworkMetadataNamespace, f.shadowPrefix+"shadow_effective_policy_id", pol)
		}
	}
	if f.rules == nil {
		return true, ""
	}
	ok, pol := f.rules.Eval(&in)
	if !ok {
		f.stats.denied.Add(1)
		f.log.Debug("rbac denied connection", "policy", pol, "remote", info.Remote)
		return false, pol
	}
	f.stats.allowed.Add(1)
	return true, ""
}

// ServeConn closes a denied connection, else passes it on.
func (f *Network) ServeConn(c net.Conn, info *downstream.Info) {
	f.ServeConnMeta(c, info, nil)
}

// ServeConnMeta is ServeConn with the connection's metadata so far.
func (f *Network) ServeConnMeta(c net.Conn, info *downstream.Info, meta *filter.Metadata) {
	if _, ok := f.next.(MetaHandler); ok && meta == nil {
		meta = &filter.Metadata{}
	}
	ok, pol := f.allows(info, meta)
	if !ok || f.next == nil {
		if r, isR := f.next.(Refuser); isR && !ok {
			r.Refuse(c, info, deniedDetails(pol))
			return
		}
		c.Close()
		return
	}
	if mh, ok := f.next.(MetaHandler); ok {
		mh.ServeConnMeta(c, info, meta)
		return
	}
	f.next.ServeConn(c, info)
}
