package rbac

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// maxDepth bounds and/or/not nesting: config from the control plane is
// trusted, but a pathological tree must not exhaust the stack.
const maxDepth = 64

type perm interface{ match(in *Input) bool }

type principal interface{ match(in *Input) bool }

// Boolean combinators, shared by permissions and principals.
type (
	anyOf  []perm
	allOf  []perm
	not    struct{ m perm }
	always struct{}
)

func (a anyOf) match(in *Input) bool {
	for _, m := range a {
		if m.match(in) {
			return true
		}
	}
	return false
}

func (a allOf) match(in *Input) bool {
	for _, m := range a {
		if !m.match(in) {
			return false
		}
	}
	return true
}

func (n not) match(in *Input) bool  { return !n.m.match(in) }
func (always) match(in *Input) bool { return true }

// Leaf matchers.
type (
	headerM    struct{ h *route.HeaderMatch }
	pathM      struct{ s *route.StringMatch }
	templateM  struct{ re *regexp.Regexp }
	destIPM    struct{ p netip.Prefix }
	destPortM  struct{ port uint32 }
	portRangeM struct{ lo, hi uint32 } // [lo, hi)
	sniM       struct{ s *route.StringMatch }
	authM      struct{ s stringMatcher } // nil s: any authenticated peer
	directIPM  struct{ p netip.Prefix }
	remoteIPM  struct{ p netip.Prefix }
	metaM      struct{ m *route.MetadataMatch }
)

func (m headerM) match(in *Input) bool {
	if in.Req == nil {
		return false // a connection has no headers (network filter)
	}
	return m.h.Match(in.Req)
}

func (m pathM) match(in *Input) bool {
	return in.Req != nil && m.s.Match(in.Path)
}

func (m templateM) match(in *Input) bool {
	return in.Req != nil && m.re.MatchString(in.Path)
}

func (m destIPM) match(in *Input) bool {
	d := in.dest()
	return d.IsValid() && m.p.Contains(d.Addr().Unmap())
}

func (m destPortM) match(in *Input) bool { return uint32(in.dest().Port()) == m.port }

func (m portRangeM) match(in *Input) bool {
	p := uint32(in.dest().Port())
	return p >= m.lo && p < m.hi
}

func (m sniM) match(in *Input) bool {
	return in.Conn != nil && m.s.Match(in.Conn.ServerName)
}

func (m authM) match(in *Input) bool {
	name, ok := in.peer()
	if !ok {
		return false
	}
	return m.s == nil || m.s.Match(name)
}

func (m directIPM) match(in *Input) bool {
	a := in.direct()
	return a.IsValid() && m.p.Contains(a)
}

func (m remoteIPM) match(in *Input) bool {
	a := in.remote()
	return a.IsValid() && m.p.Contains(a)
}

func (m metaM) match(in *Input) bool {
	if in.Meta == nil {
		return m.m.Match(nil)
	}
	return m.m.Match(in.Meta)
}

func compilePerm(p *rbacv3.Permission, path string, depth int) (perm, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s: nested too deeply", path)
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return always{}, nil
	case *rbacv3.Permission_AndRules:
		var out allOf
		for i, c := range r.AndRules.GetRules() {
			m, err := compilePerm(c, fmt.Sprintf("%s.and_rules.rules[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Permission_OrRules:
		var out anyOf
		for i, c := range r.OrRules.GetRules() {
			m, err := compilePerm(c, fmt.Sprintf("%s.or_rules.rules[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Permission_NotRule:
		m, err := compilePerm(r.NotRule, path+".not_rule", depth+1)
		if err != nil {
			return nil, err
		}
		return not{m}, nil
	case *rbacv3.Permission_Header:
		h, err := route.CompileHeaderMatch(r.Header, path+".header")
		if err != nil {
			return nil, err
		}
		return headerM{h}, nil
	case *rbacv3.Permission_UrlPath:
		s, err := compilePath(r.UrlPath, path+".url_path")
		if err != nil {
			return nil, err
		}
		return pathM{s}, nil
	case *rbacv3.Permission_UriTemplate:
		re, err := compileTemplate(r.UriTemplate, path+".uri_template")
		if err != nil {
			return nil, err
		}
		return templateM{re}, nil
	case *rbacv3.Permission_DestinationIp:
		pf, err := prefix(r.DestinationIp, path+".destination_ip")
		if err != nil {
			return nil, err
		}
		return destIPM{pf}, nil
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return nil, fmt.Errorf("%s.destination_port: %d out of range", path, r.DestinationPort)
		}
		return destPortM{r.DestinationPort}, nil
	case *rbacv3.Permission_DestinationPortRange:
		return portRangeM{uint32(r.DestinationPortRange.GetStart()), uint32(r.DestinationPortRange.GetEnd())}, nil
	case *rbacv3.Permission_RequestedServerName:
		s, err := route.CompileStringMatch(r.RequestedServerName, path+".requested_server_name")
		if err != nil {
			return nil, err
		}
		return sniM{s}, nil
	case *rbacv3.Permission_Metadata:
		return compileMeta(r.Metadata, path+".metadata")
	case nil:
		return nil, fmt.Errorf("%s: empty permission", path)
	default:
		return nil, fmt.Errorf("%s: permission %T not supported by weft-proxy", path, r)
	}
}

func compilePrincipal(p *rbacv3.Principal, path string, depth int) (principal, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s: nested too deeply", path)
	}
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return always{}, nil
	case *rbacv3.Principal_AndIds:
		var out allOf
		for i, c := range r.AndIds.GetIds() {
			m, err := compilePrincipal(c, fmt.Sprintf("%s.and_ids.ids[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Principal_OrIds:
		var out anyOf
		for i, c := range r.OrIds.GetIds() {
			m, err := compilePrincipal(c, fmt.Sprintf("%s.or_ids.ids[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Principal_NotId:
		m, err := compilePrincipal(r.NotId, path+".not_id", depth+1)
		if err != nil {
			return nil, err
		}
		return not{m}, nil
	case *rbacv3.Principal_Authenticated_:
		if err := xdsfield.Check(r.Authenticated, path+".authenticated", "principal_name"); err != nil {
			return nil, err
		}
		if r.Authenticated.GetPrincipalName() == nil {
			return authM{}, nil
		}
		s, err := compileString(r.Authenticated.GetPrincipalName(), path+".authenticated.principal_name")
		if err != nil {
			return nil, err
		}
		return authM{s}, nil
	case *rbacv3.Principal_FilterState:
		// Istio's ambient form of the peer principal; the same identity as
		// authenticated.principal_name.
		fs := r.FilterState
		if fs.GetKey() != "io.istio.peer_principal" || fs.GetStringMatch() == nil {
			return nil, fmt.Errorf("%s.filter_state: only key io.istio.peer_principal with string_match is supported by weft-proxy", path)
		}
		s, err := compileString(fs.GetStringMatch(), path+".filter_state.string_match")
		if err != nil {
			return nil, err
		}
		return authM{s}, nil
	case *rbacv3.Principal_SourceIp:
		pf, err := prefix(r.SourceIp, path+".source_ip")
		if err != nil {
			return nil, err
		}
		return directIPM{pf}, nil
	case *rbacv3.Principal_DirectRemoteIp:
		pf, err := prefix(r.DirectRemoteIp, path+".direct_remote_ip")
		if err != nil {
			return nil, err
		}
		return directIPM{pf}, nil
	case *rbacv3.Principal_RemoteIp:
		pf, err := prefix(r.RemoteIp, path+".remote_ip")
		if err != nil {
			return nil, err
		}
		return remoteIPM{pf}, nil
	case *rbacv3.Principal_Header:
		h, err := route.CompileHeaderMatch(r.Header, path+".header")
		if err != nil {
			return nil, err
		}
		return headerM{h}, nil
	case *rbacv3.Principal_UrlPath:
		s, err := compilePath(r.UrlPath, path+".url_path")
		if err != nil {
			return nil, err
		}
		return pathM{s}, nil
	case *rbacv3.Principal_Metadata:
		return compileMeta(r.Metadata, path+".metadata")
	case nil:
		return nil, fmt.Errorf("%s: empty principal", path)
	default:
		return nil, fmt.Errorf("%s: principal %T not supported by weft-proxy", path, r)
	}
}

// stringMatcher is a compiled string matcher.
type stringMatcher interface{ Match(string) bool }

// containsM is the regex ".*L.*" for a literal L (Istio's source.namespace
// form `.*/ns/NS/.*`), matched without the regex engine: RE2's "." does
// not match a newline, so neither does this.
type containsM struct{ lit string }

func (c containsM) Match(v string) bool {
	return strings.Contains(v, c.lit) && strings.IndexByte(v, '\n') < 0
}

// compileString compiles a StringMatcher, turning the regex shapes Istio
// emits for principals into plain string operations where exact.
func compileString(m *matcherv3.StringMatcher, path string) (stringMatcher, error) {
	if re := m.GetSafeRegex().GetRegex(); re != "" && !m.GetIgnoreCase() && strings.HasPrefix(re, ".*") && strings.HasSuffix(re, ".*") && len(re) > 4 {
		lit := re[2 : len(re)-2]
		if u, ok := unquoteMeta(lit); ok {
			if _, err := route.CompileStringMatch(m, path); err != nil {
				return nil, err
			}
			return containsM{u}, nil
		}
	}
	return route.CompileStringMatch(m, path)
}

// unquoteMeta undoes regexp.QuoteMeta; ok is false when lit holds any
// unescaped metacharacter.
func unquoteMeta(lit string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if c == '\\' {
			if i+1 >= len(lit) || !strings.ContainsRune(`\.+*?()|[]{}^$`, rune(lit[i+1])) {
				return "", false
			}
			b.WriteByte(lit[i+1])
			i++
			continue
		}
		if strings.IndexByte(`.+*?()|[]{}^$`, c) >= 0 || c >= 0x80 {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

func compilePath(m *matcherv3.PathMatcher, path string) (*route.StringMatch, error) {
	if err := xdsfield.Check(m, path, "path"); err != nil {
		return nil, err
	}
	return route.CompileStringMatch(m.GetPath(), path+".path")
}

// compileTemplate compiles Envoy's uri_template path matcher (Istio's
// `{*}` one segment, `{**}` any remainder) into an anchored regexp.
func compileTemplate(tc *corev3.TypedExtensionConfig, path string) (*regexp.Regexp, error) {
	cfg := &uritemplatev3.UriTemplateMatchConfig{}
	if tc.GetTypedConfig() == nil || !tc.GetTypedConfig().MessageIs(cfg) {
		return nil, fmt.Errorf("%s.typed_config: want UriTemplateMatchConfig", path)
	}
	if err := tc.GetTypedConfig().UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("%s.typed_config: %w", path, err)
	}
	t := cfg.GetPathTemplate()
	if !strings.HasPrefix(t, "/") {
		return nil, fmt.Errorf("%s.path_template: %q must start with /", path, t)
	}
	var b strings.Builder
	b.WriteByte('^')
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(t))
			break
		}
		b.WriteString(regexp.QuoteMeta(t[:i]))
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%s.path_template: unclosed {", path)
		}
		switch op := t[i+1 : i+j]; op {
		case "*":
			b.WriteString(`[^/]+`)
		case "**":
			if i+j+1 != len(t) {
				return nil, fmt.Errorf("%s.path_template: {**} must be last", path)
			}
			b.WriteString(`.*`)
		default:
			return nil, fmt.Errorf("%s.path_template: operator {%s} not supported by weft-proxy", path, op)
		}
		t = t[i+j+1:]
	}
	b.WriteByte('$')
	return regexp.Compile(b.String())
}

func prefix(c *corev3.CidrRange, path string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %w", path, err)
	}
	bits := a.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	p, err := a.Unmap().Prefix(bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s.prefix_len: %w", path, err)
	}
	return p, nil
}

func compileMeta(m *matcherv3.MetadataMatcher, path string) (perm, error) {
	mm, err := route.CompileMetadataMatch(m, path)
	if err != nil {
		return nil, err
	}
	return metaM{mm}, nil
}
