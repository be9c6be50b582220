package rbac

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// MetadataNamespace is where the HTTP filter records shadow results
// (Envoy's dynamic metadata of envoy.filters.http.rbac), which Istio's
// ext_authz filter_enabled_metadata reads for CUSTOM policies.
const MetadataNamespace = "envoy.filters.http.rbac"

// Options for the filters.
type Options struct {
	Log *slog.Logger
	// Counters receives the rbac.* stats; nil keeps them private.
	Counters *filter.Counters
	// StatPrefix is the owning connection manager's prefix, e.g.
	// "http.inbound_0.0.0.0_80." (with the trailing dot).
	StatPrefix string
}

// stats are one filter's counters, resolved at compile time.
type stats struct {
	allowed, denied             *atomic.Int64
	shadowAllowed, shadowDenied *atomic.Int64
}

func newStats(o Options, rulesPrefix, shadowPrefix string) stats {
	p := o.StatPrefix + "rbac."
	c := o.Counters
	return stats{
		allowed: c.Counter(p + rulesPrefix + "allowed"), denied: c.Counter(p + rulesPrefix + "denied"),
		shadowAllowed: c.Counter(p + shadowPrefix + "shadow_allowed"),
		shadowDenied:  c.Counter(p + shadowPrefix + "shadow_denied"),
	}
}

// HTTP is the compiled envoy.filters.http.rbac filter.
type HTTP struct {
	rules, shadow *Engine
	shadowPrefix  string
	// metadata keys for the shadow result, prefixed as Envoy does
	keyPolicy, keyResult string
	stats                stats
	log                  *slog.Logger
	peers                PeerCache
	// logShadow: dry-run results are logged; CUSTOM's marks
	// (istio_ext_authz_) are not denials.
	logShadow bool
}

var _ filter.Filter = (*HTTP)(nil)

var inputs = sync.Pool{New: func() any { return new(Input) }}

// NewHTTP compiles the HTTP filter config.
func NewHTTP(cfg *rbachttpv3.RBAC, o Options) (*HTTP, error) {
	const p = "rbac"
	if err := xdsfield.Check(cfg, p, "rules", "rules_stat_prefix", "shadow_rules", "shadow_rules_stat_prefix"); err != nil {
		return nil, err
	}
	f := &HTTP{shadowPrefix: cfg.GetShadowRulesStatPrefix(), log: o.Log}
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
	f.logShadow = !strings.HasPrefix(f.shadowPrefix, "istio_ext_authz")
	f.keyPolicy = f.shadowPrefix + "shadow_effective_policy_id"
	f.keyResult = f.shadowPrefix + "shadow_engine_result"
	f.stats = newStats(o, cfg.GetRulesStatPrefix(), f.shadowPrefix)
	return f, nil
}

// Rules and Shadow expose the compiled engines (proxy-config, tests).
func (f *HTTP) Rules() *Engine  { return f.rules }
func (f *HTTP) Shadow() *Engine { return f.shadow }

// Serve evaluates the shadow rules (recorded, never enforced), then the
// rules: a denial is 403 "RBAC: access denied" with flag RBAC.
func (f *HTTP) Serve(s *filter.Stream) error {
	in := inputs.Get().(*Input)
	*in = Input{Req: s.Req, Path: s.Req.URL.EscapedPath(), Conn: s.Conn, Meta: &s.Meta, Cache: &f.peers}
	if s.Info != nil && s.Info.ClientIP != "" {
		in.RemoteIP, _ = netip.ParseAddr(s.Info.ClientIP)
	}
	denied, name := false, ""
	if f.shadow != nil {
		ok, pol := f.shadow.Eval(in)
		result := "allowed"
		if ok {
			f.stats.shadowAllowed.Add(1)
		} else {
			f.stats.shadowDenied.Add(1)
			result = "denied"
			if f.logShadow {
				f.log.Info("rbac shadow denied (dry run, not enforced)", "policy", pol, "path", in.Path, "method", s.Req.Method)
			}
		}
		if pol != "" {
			s.Meta.SetField(MetadataNamespace, f.keyPolicy, pol)
		}
		s.Meta.SetField(MetadataNamespace, f.keyResult, result)
	}
	if f.rules != nil {
		var ok bool
		ok, name = f.rules.Eval(in)
		denied = !ok
	}
	*in = Input{}
	inputs.Put(in)
	if f.rules == nil {
		return s.Next()
	}
	if denied {
		f.stats.denied.Add(1)
		return &rflag.Error{Flag: rflag.RBAC, Status: http.StatusForbidden, Details: deniedDetails(name)}
	}
	f.stats.allowed.Add(1)
	return s.Next()
}
