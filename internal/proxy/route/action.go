package route

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// DefaultTimeout is Envoy's route timeout when the route sets none. Istio
// always sets one (0s = disabled), so this only matters for hand-written
// configs.
const DefaultTimeout = 15 * time.Second

// Action is a compiled RouteAction (forward to a cluster).
type Action struct {
	Cluster       string // static cluster name
	ClusterHeader string // canonical header naming the cluster
	Weighted      []WeightedCluster
	totalWeight   uint64

	PrefixRewrite string
	RegexRewrite  *regexp.Regexp
	RegexSubst    string // Go replacement syntax (\1 → ${1})
	HostRewrite   string // host_rewrite_literal

	Timeout     time.Duration // 0: disabled
	IdleTimeout time.Duration
	// GrpcTimeoutMax: when set (HasGrpcTimeout), a grpc-timeout request
	// header overrides Timeout, capped by GrpcTimeoutMax unless it is 0.
	HasGrpcTimeout    bool
	GrpcTimeoutMax    time.Duration
	MaxStreamDuration time.Duration

	Retry    *RetryPolicy
	Mirrors  []Mirror
	Hash     []HashPolicy
	Upgrades []Upgrade
}

// WeightedCluster is one branch of weighted_clusters.
type WeightedCluster struct {
	Name        string
	Weight      uint64
	Headers     Headers
	HostRewrite string
}

// Upgrade is a route-level upgrade_configs entry (overrides the HCM's).
type Upgrade struct {
	Type    string // lower-case: "websocket", "connect"
	Enabled bool
	implied bool
}

func (a *Action) upgradeSet(t string) bool {
	for _, u := range a.Upgrades {
		if strings.EqualFold(u.Type, t) {
			return true
		}
	}
	return false
}

// UpgradeEnabled reports the route's override for an upgrade type: set
// is false when the route says nothing (the HCM's setting applies).
func (a *Action) UpgradeEnabled(t string) (enabled, set bool) {
	for _, u := range a.Upgrades {
		if strings.EqualFold(u.Type, t) {
			return u.Enabled, true
		}
	}
	return false, false
}

// PickCluster chooses the cluster for a request: the static name, the
// header's value, or a weighted random branch. The WeightedCluster is nil
// unless weighted_clusters picked it.
func (a *Action) PickCluster(r *http.Request, random uint64) (string, *WeightedCluster) {
	if a.ClusterHeader != "" {
		return r.Header.Get(a.ClusterHeader), nil
	}
	if len(a.Weighted) == 0 {
		return a.Cluster, nil
	}
	n := random % a.totalWeight
	for i := range a.Weighted {
		w := &a.Weighted[i]
		if n < w.Weight {
			return w.Name, w
		}
		n -= w.Weight
	}
	w := &a.Weighted[len(a.Weighted)-1]
	return w.Name, w
}

// Mirror is a compiled request_mirror_policies entry.
type Mirror struct {
	Cluster string
	Fraction
	// NoShadowSuffix: Envoy appends "-shadow" to the mirrored request's
	// authority unless disable_shadow_host_suffix_append is set (still the
	// default in Envoy 1.36, checked against route_components.proto).
	NoShadowSuffix bool
	HostRewrite    string
}

// Dur converts a protobuf duration (nil → 0).
func Dur(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func compileAction(a *routev3.RouteAction, vhRetry *RetryPolicy, path string) (*Action, error) {
	if err := xdsfield.Check(a, path, "cluster", "cluster_header", "weighted_clusters", "prefix_rewrite",
		"regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "timeout", "idle_timeout",
		"retry_policy", "request_mirror_policies", "hash_policy", "upgrade_configs",
		"max_stream_duration", "cluster_not_found_response_code", "cors", "max_grpc_timeout"); err != nil {
		return nil, err
	}
	if a.GetAutoHostRewrite().GetValue() {
		// The upstream host name is chosen inside the cluster after the
		// request headers are final; not implemented yet.
		return nil, fmt.Errorf("%s.auto_host_rewrite: not supported by weft-proxy", path)
	}
	if a.GetClusterNotFoundResponseCode() != routev3.RouteAction_SERVICE_UNAVAILABLE {
		return nil, fmt.Errorf("%s.cluster_not_found_response_code: only SERVICE_UNAVAILABLE is supported by weft-proxy", path)
	}
	out := &Action{PrefixRewrite: a.GetPrefixRewrite(), HostRewrite: a.GetHostRewriteLiteral(),
		Timeout: DefaultTimeout, Retry: vhRetry}
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if c.Cluster == "" {
			return nil, fmt.Errorf("%s.cluster: empty cluster name", path)
		}
		out.Cluster = c.Cluster
	case *routev3.RouteAction_ClusterHeader:
		if c.ClusterHeader == "" || strings.HasPrefix(c.ClusterHeader, ":") {
			return nil, fmt.Errorf("%s.cluster_header: invalid header %q", path, c.ClusterHeader)
		}
		out.ClusterHeader = http.CanonicalHeaderKey(c.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		if err := out.compileWeighted(c.WeightedClusters, path+".weighted_clusters"); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: cluster specifier %T not supported by weft-proxy", path, c)
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		re, err := compileRegex(rr.GetPattern(), path+".regex_rewrite.pattern")
		if err != nil {
			return nil, err
		}
		// Substitution is applied to every match, not to the whole path.
		if re, err = regexp.Compile(rr.GetPattern().GetRegex()); err != nil {
			return nil, fmt.Errorf("%s.regex_rewrite.pattern: %w", path, err)
		}
		out.RegexRewrite, out.RegexSubst = re, convertSubst(rr.GetSubstitution())
	}
	if a.GetTimeout() != nil {
		out.Timeout = Dur(a.GetTimeout())
	}
	out.IdleTimeout = Dur(a.GetIdleTimeout())
	if msd := a.GetMaxStreamDuration(); msd != nil {
		if err := xdsfield.Check(msd, path+".max_stream_duration", "max_stream_duration", "grpc_timeout_header_max"); err != nil {
			return nil, err
		}
		out.MaxStreamDuration = Dur(msd.GetMaxStreamDuration())
		if msd.GetGrpcTimeoutHeaderMax() != nil {
			out.HasGrpcTimeout, out.GrpcTimeoutMax = true, Dur(msd.GetGrpcTimeoutHeaderMax())
		}
	} else if a.GetMaxGrpcTimeout() != nil {
		out.HasGrpcTimeout, out.GrpcTimeoutMax = true, Dur(a.GetMaxGrpcTimeout())
	}
	if a.GetRetryPolicy() != nil {
		// A route's policy replaces the virtual host's (no merge).
		var err error
		if out.Retry, err = compileRetry(a.GetRetryPolicy(), path+".retry_policy"); err != nil {
			return nil, err
		}
	}
	for i, m := range a.GetRequestMirrorPolicies() {
		p := fmt.Sprintf("%s.request_mirror_policies[%d]", path, i)
		if err := xdsfield.Check(m, p, "cluster", "runtime_fraction", "trace_sampled",
			"disable_shadow_host_suffix_append", "host_rewrite_literal"); err != nil {
			return nil, err
		}
		if m.GetCluster() == "" {
			return nil, fmt.Errorf("%s.cluster: empty cluster name", p)
		}
		mi := Mirror{Cluster: m.GetCluster(), Fraction: Fraction{Num: 1, Den: 1},
			NoShadowSuffix: m.GetDisableShadowHostSuffixAppend() || m.GetHostRewriteLiteral() != "",
			HostRewrite:    m.GetHostRewriteLiteral()}
		if m.GetRuntimeFraction() != nil {
			mi.Fraction = compileRuntimeFraction(m.GetRuntimeFraction())
		}
		out.Mirrors = append(out.Mirrors, mi)
	}
	for i, h := range a.GetHashPolicy() {
		hp, err := compileHash(h, fmt.Sprintf("%s.hash_policy[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.Hash = append(out.Hash, hp)
	}
	for i, u := range a.GetUpgradeConfigs() {
		p := fmt.Sprintf("%s.upgrade_configs[%d]", path, i)
		if err := xdsfield.Check(u, p, "upgrade_type", "enabled"); err != nil {
			return nil, err
		}
		en := u.GetEnabled() == nil || u.GetEnabled().GetValue()
		out.Upgrades = append(out.Upgrades, Upgrade{Type: strings.ToLower(u.GetUpgradeType()), Enabled: en})
	}
	return out, nil
}

func (a *Action) compileWeighted(w *routev3.WeightedCluster, path string) error {
	if err := xdsfield.Check(w, path, "clusters", "total_weight"); err != nil {
		return err
	}
	for i, c := range w.GetClusters() {
		p := fmt.Sprintf("%s.clusters[%d %q]", path, i, c.GetName())
		if err := xdsfield.Check(c, p, "name", "weight", "request_headers_to_add", "request_headers_to_remove",
			"response_headers_to_add", "response_headers_to_remove", "host_rewrite_literal", "metadata_match"); err != nil {
			return err
		}
		if c.GetMetadataMatch() != nil {
			return fmt.Errorf("%s.metadata_match: not supported by weft-proxy (subsets are separate clusters)", p)
		}
		if c.GetName() == "" {
			return fmt.Errorf("%s.name: empty cluster name", p)
		}
		hs, err := compileHeaders(c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove(),
			c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove(), p)
		if err != nil {
			return err
		}
		wt := uint64(c.GetWeight().GetValue())
		a.Weighted = append(a.Weighted, WeightedCluster{Name: c.GetName(), Weight: wt, Headers: hs, HostRewrite: c.GetHostRewriteLiteral()})
		a.totalWeight += wt
	}
	if len(a.Weighted) == 0 {
		return fmt.Errorf("%s.clusters: at least one cluster is required", path)
	}
	if a.totalWeight == 0 {
		return fmt.Errorf("%s: total weight must be greater than 0", path)
	}
	if tw := w.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != a.totalWeight {
		return fmt.Errorf("%s.total_weight: %d does not equal the sum of weights %d", path, tw.GetValue(), a.totalWeight)
	}
	return nil
}

// convertSubst turns RE2 substitution syntax (\1) into Go's (${1}).
func convertSubst(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteByte('}')
			i++
			continue
		}
		if c == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// RewritePath applies prefix_rewrite (matched prefix replaced) or
// regex_rewrite to path; ok is false when the route rewrites nothing.
func (rt *Route) RewritePath(path string) (string, bool) {
	a := rt.Action
	if a == nil {
		return path, false
	}
	if a.PrefixRewrite != "" && (rt.pathKind == pathPrefix || rt.pathKind == pathExact || rt.pathKind == pathSeparated) {
		n := len(rt.path)
		if n > len(path) {
			n = len(path)
		}
		return a.PrefixRewrite + path[n:], true
	}
	if a.RegexRewrite != nil {
		return a.RegexRewrite.ReplaceAllString(path, a.RegexSubst), true
	}
	return path, false
}

// HashPolicy is one compiled hash_policy entry.
type HashPolicy struct {
	Kind     HashKind
	Name     string // header (canonical), cookie or query parameter name
	Terminal bool
}

// HashKind says what a hash policy reads.
type HashKind uint8

const (
	HashHeader HashKind = iota + 1
	HashCookie
	HashSourceIP
	HashQuery
)

func compileHash(h *routev3.RouteAction_HashPolicy, path string) (HashPolicy, error) {
	hp := HashPolicy{Terminal: h.GetTerminal()}
	switch p := h.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		if err := xdsfield.Check(p.Header, path+".header", "header_name"); err != nil {
			return hp, err
		}
		hp.Kind, hp.Name = HashHeader, p.Header.GetHeaderName()
		if !strings.HasPrefix(hp.Name, ":") {
			hp.Name = http.CanonicalHeaderKey(hp.Name)
		}
	case *routev3.RouteAction_HashPolicy_Cookie_:
		// A ttl asks Envoy to generate the cookie when absent; weft-proxy
		// only reads it (an absent cookie means no hash from this policy).
		if err := xdsfield.Check(p.Cookie, path+".cookie", "name", "ttl", "path"); err != nil {
			return hp, err
		}
		hp.Kind, hp.Name = HashCookie, p.Cookie.GetName()
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if !p.ConnectionProperties.GetSourceIp() {
			return hp, fmt.Errorf("%s.connection_properties.source_ip: must be true", path)
		}
		hp.Kind = HashSourceIP
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		hp.Kind, hp.Name = HashQuery, p.QueryParameter.GetName()
	default:
		return hp, fmt.Errorf("%s: hash policy %T not supported by weft-proxy", path, p)
	}
	return hp, nil
}

// HashKey computes the request's hash over the policies, combining them
// as Envoy does (rotate left 1, xor); ok is false when no policy produced a
// value. sourceIP is the downstream address without port.
func (a *Action) HashKey(r *http.Request, sourceIP string) (uint64, bool) {
	var h uint64
	ok := false
	for i := range a.Hash {
		p := &a.Hash[i]
		v, found := "", false
		switch p.Kind {
		case HashHeader:
			v, found = headerValue(r, p.Name)
		case HashCookie:
			if c, err := r.Cookie(p.Name); err == nil {
				v, found = c.Value, true
			}
		case HashSourceIP:
			v, found = sourceIP, sourceIP != ""
		case HashQuery:
			q := queryMatch{name: p.Name, present: true}
			if q.match(r.URL.RawQuery) {
				v, found = queryValue(r.URL.RawQuery, p.Name), true
			}
		}
		if !found {
			continue
		}
		nh := fnv64a(v)
		if ok {
			h = (h<<1 | h>>63) ^ nh
		} else {
			h, ok = nh, true
		}
		if p.Terminal {
			break
		}
	}
	return h, ok
}

func queryValue(raw, name string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if unescape(k) == name {
			return unescape(v)
		}
	}
	return ""
}

// fnv64a hashes s without allocating. FNV-1a alone leaves short keys
// ("1", "2" …) bunched in the high bits, which would put them all on one
// arc of a hash ring; a murmur3 finaliser spreads them (Envoy uses
// xxHash64, which avalanches by itself).
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
