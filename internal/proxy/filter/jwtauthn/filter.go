package jwtauthn

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// MetadataNamespace is where verified payloads go (Envoy's filter name),
// under each provider's payload_in_metadata key.
const MetadataNamespace = "envoy.filters.http.jwt_authn"

// Options for the filter.
type Options struct {
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
	// Counters receives jwt_authn.allowed/denied; nil keeps them private.
	Counters *filter.Counters
	// StatPrefix is the connection manager's, e.g. "http.inbound_0.0.0.0_80.".
	StatPrefix string
}

// Filter is the compiled jwt_authn filter; immutable, safe for concurrent use.
type Filter struct {
	providers []*provider
	rules     []rule
	bypass    bool // bypass_cors_preflight
	now       func() time.Time

	allowed, denied *atomic.Int64
}

var _ filter.Filter = (*Filter)(nil)

type rule struct {
	prefix string // "" with path set: exact path
	path   string
	req    *requirement
}

// requirement is a compiled JwtRequirement.
type requirement struct {
	kind     uint8
	provider int // index into providers
	subs     []*requirement
}

const (
	reqProvider uint8 = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

// New compiles a JwtAuthentication.
func New(cfg *jwtv3.JwtAuthentication, o Options) (*Filter, error) {
	const p = "jwt_authn"
	if err := xdsfield.Check(cfg, p, "providers", "rules", "bypass_cors_preflight"); err != nil {
		return nil, err
	}
	f := &Filter{bypass: cfg.GetBypassCorsPreflight(), now: o.Now}
	if f.now == nil {
		f.now = time.Now
	}
	names := make([]string, 0, len(cfg.GetProviders()))
	for n := range cfg.GetProviders() {
		names = append(names, n)
	}
	sort.Strings(names)
	index := map[string]int{}
	for _, n := range names {
		pr, err := compileProvider(n, cfg.GetProviders()[n], fmt.Sprintf("%s.providers[%q]", p, n))
		if err != nil {
			return nil, err
		}
		index[n] = len(f.providers)
		f.providers = append(f.providers, pr)
	}
	for i, r := range cfg.GetRules() {
		rp := fmt.Sprintf("%s.rules[%d]", p, i)
		if err := xdsfield.Check(r, rp, "match", "requires"); err != nil {
			return nil, err
		}
		var cr rule
		m := r.GetMatch()
		if err := xdsfield.Check(m, rp+".match", "prefix", "path"); err != nil {
			return nil, err
		}
		switch ps := m.GetPathSpecifier().(type) {
		case *routev3.RouteMatch_Prefix:
			cr.prefix = ps.Prefix
		case *routev3.RouteMatch_Path:
			cr.path = ps.Path
		default:
			return nil, fmt.Errorf("%s.match: only prefix or path is supported by weft-proxy", rp)
		}
		if r.GetRequires() != nil {
			req, err := compileReq(r.GetRequires(), index, rp+".requires", 0)
			if err != nil {
				return nil, err
			}
			cr.req = req
		}
		f.rules = append(f.rules, cr)
	}
	f.allowed = o.Counters.Counter(o.StatPrefix + "jwt_authn.allowed")
	f.denied = o.Counters.Counter(o.StatPrefix + "jwt_authn.denied")
	return f, nil
}

func compileReq(r *jwtv3.JwtRequirement, index map[string]int, path string, depth int) (*requirement, error) {
	if depth > 16 {
		return nil, fmt.Errorf("%s: nested too deeply", path)
	}
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		i, ok := index[t.ProviderName]
		if !ok {
			return nil, fmt.Errorf("%s.provider_name: unknown provider %q", path, t.ProviderName)
		}
		return &requirement{kind: reqProvider, provider: i}, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		out := &requirement{kind: reqAny}
		for i, s := range t.RequiresAny.GetRequirements() {
			c, err := compileReq(s, index, fmt.Sprintf("%s.requires_any.requirements[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out.subs = append(out.subs, c)
		}
		return out, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		out := &requirement{kind: reqAll}
		for i, s := range t.RequiresAll.GetRequirements() {
			c, err := compileReq(s, index, fmt.Sprintf("%s.requires_all.requirements[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out.subs = append(out.subs, c)
		}
		return out, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	default:
		return nil, fmt.Errorf("%s: requirement %T not supported by weft-proxy", path, t)
	}
}

// check is one request's verification state: each provider's token is
// looked up and verified at most once.
type check struct {
	f    *Filter
	r    *http.Request
	now  time.Time
	done []bool
	res  []result
}

type result struct {
	st  status
	tok string
	loc *location
	v   *verified
}

var checks = sync.Pool{New: func() any { return new(check) }}

func (c *check) provider(i int) *result {
	if c.done[i] {
		return &c.res[i]
	}
	c.done[i] = true
	p := c.f.providers[i]
	r := &c.res[i]
	r.tok, r.loc = p.token(c.r)
	if r.tok == "" {
		r.st = stMissing
		return r
	}
	r.v, r.st = p.verify(r.tok, c.now)
	return r
}

// eval returns stOK when req is satisfied, else why not.
func (c *check) eval(req *requirement) status {
	switch req.kind {
	case reqProvider:
		return c.provider(req.provider).st
	case reqAny:
		last := stMissing
		for _, s := range req.subs {
			st := c.eval(s)
			if st == stOK {
				return stOK
			}
			// Envoy reports the most telling failure: a bad token beats
			// a missing one.
			if st != stMissing || last == stMissing {
				last = st
			}
		}
		return last
	case reqAll:
		for _, s := range req.subs {
			if st := c.eval(s); st != stOK {
				return st
			}
		}
		return stOK
	case reqAllowMissingOrFailed:
		for i := range c.f.providers {
			c.provider(i)
		}
		return stOK
	default: // allow_missing: every token found must verify under some provider
		bad := stOK
		for i := range c.f.providers {
			r := c.provider(i)
			if r.st == stOK || r.st == stMissing {
				continue
			}
			if c.tokenOK(r.tok) {
				continue
			}
			bad = r.st
			if bad != stUnknownIssuer {
				break
			}
		}
		return bad
	}
}

func (c *check) tokenOK(tok string) bool {
	for i := range c.f.providers {
		if r := c.provider(i); r.st == stOK && r.tok == tok {
			return true
		}
	}
	return false
}

// Serve verifies the request's tokens. Verified payloads go to dynamic
// metadata (and headers, as configured); a failed requirement is answered
// 401 with Envoy's message.
func (f *Filter) Serve(s *filter.Stream) error {
	r := s.Req
	if f.bypass && r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		return s.Next()
	}
	var req *requirement
	matched := false
	for i := range f.rules {
		ru := &f.rules[i]
		if (ru.path != "" && r.URL.Path == ru.path) || (ru.path == "" && strings.HasPrefix(r.URL.Path, ru.prefix)) {
			req, matched = ru.req, true
			break
		}
	}
	if !matched || req == nil {
		return s.Next()
	}
	// Headers this filter writes from verified tokens never come from the
	// client (Envoy would pass a forged one through when no token is sent).
	for _, p := range f.providers {
		if p.payloadHdr != "" {
			delete(r.Header, http.CanonicalHeaderKey(p.payloadHdr))
		}
		for _, ch := range p.claimHdrs {
			delete(r.Header, ch.header)
		}
	}
	c := checks.Get().(*check)
	n := len(f.providers)
	c.f, c.r, c.now = f, r, f.now()
	c.done = c.done[:0]
	for range n {
		c.done = append(c.done, false)
	}
	if cap(c.res) < n {
		c.res = make([]result, n)
	}
	c.res = c.res[:n]
	clear(c.res)
	st := c.eval(req)
	if st == stOK {
		f.apply(s, c)
	}
	c.f, c.r = nil, nil
	clear(c.res)
	checks.Put(c)
	if st != stOK {
		f.denied.Add(1)
		return f.deny(s, st)
	}
	f.allowed.Add(1)
	return s.Next()
}

// apply records verified payloads and applies forward/header options.
func (f *Filter) apply(s *filter.Stream, c *check) {
	h := s.Req.Header
	rematch := false
	for i, p := range f.providers {
		if !c.done[i] {
			continue
		}
		r := &c.res[i]
		if r.st != stOK {
			continue
		}
		if p.metaKey != "" {
			s.Meta.SetField(MetadataNamespace, p.metaKey, normalized(r.v.claims, p.spaceDelim))
			rematch = rematch || p.clearRoute
		}
		if p.payloadHdr != "" {
			h[http.CanonicalHeaderKey(p.payloadHdr)] = []string{base64.RawURLEncoding.EncodeToString(r.v.payload)}
		}
		for _, ch := range p.claimHdrs {
			if v, ok := claimString(r.v.claims, ch.claim); ok {
				h[ch.header] = []string{v}
			}
		}
		if !p.forward && r.loc != nil && r.loc.kind == locHeader {
			delete(h, r.loc.name)
		}
	}
	if rematch && s.Table != nil {
		// Envoy's clear_route_cache: routes may match on the verified
		// claims (Istio's @request.auth.claims at gateways).
		s.Req = route.WithMetadata(s.Req, &s.Meta)
		s.VHost, s.Route = s.Table.Match(s.Req)
	}
}

func (f *Filter) deny(s *filter.Stream, st status) error {
	msg := st.message()
	r := s.Req
	h := s.W.Header()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	errCode := "invalid_token"
	if st == stMissing {
		h["Www-Authenticate"] = []string{fmt.Sprintf("Bearer realm=%q", scheme+"://"+r.Host+r.URL.Path)}
	} else {
		h["Www-Authenticate"] = []string{fmt.Sprintf("Bearer realm=%q, error=%q", scheme+"://"+r.Host+r.URL.Path, errCode)}
	}
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{strconv.Itoa(len(msg))}
	s.Info.Details = "jwt_authn_access_denied{" + strings.ReplaceAll(msg, " ", "_") + "}"
	s.W.WriteHeader(http.StatusUnauthorized)
	if r.Method != http.MethodHead {
		s.W.Write([]byte(msg))
	}
	return nil
}

// normalized splits space-delimited claims (scope, permission) into lists
// for metadata, as Envoy's normalize_payload_in_metadata does.
func normalized(claims map[string]any, delim map[string]bool) map[string]any {
	if len(delim) == 0 {
		return claims
	}
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		if s, ok := v.(string); ok && delim[k] {
			var l []any
			for _, part := range strings.Fields(s) {
				l = append(l, part)
			}
			out[k] = l
			continue
		}
		out[k] = v
	}
	return out
}

// claimString reads a (nested) claim as a header value.
func claimString(claims map[string]any, path []string) (string, bool) {
	var v any = claims
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[k]; !ok {
			return "", false
		}
	}
	switch t := v.(type) {
	case string:
		return t, true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}
