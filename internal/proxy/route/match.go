package route

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// StringMatch is a compiled envoy.type.matcher.v3.StringMatcher.
type StringMatch struct {
	kind       uint8 // strExact … strRegex
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

const (
	strExact uint8 = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// CompileStringMatch compiles a StringMatcher; path names it in errors.
func CompileStringMatch(m *matcherv3.StringMatcher, path string) (*StringMatch, error) {
	if m == nil {
		return nil, fmt.Errorf("%s: missing string matcher", path)
	}
	s := &StringMatch{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex, path+".safe_regex")
		if err != nil {
			return nil, err
		}
		s.kind, s.re = strRegex, re
	default:
		return nil, fmt.Errorf("%s: unsupported string matcher %T", path, p)
	}
	if s.ignoreCase && s.kind != strRegex {
		s.value = strings.ToLower(s.value)
	}
	return s, nil
}

// compileRegex compiles an RE2 regex that must match the whole input, as
// Envoy's safe_regex does.
func compileRegex(m *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	if m == nil {
		return nil, fmt.Errorf("%s: missing regex", path)
	}
	if err := xdsfield.Check(m, path, "regex", "google_re2"); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return re, nil
}

// Match reports whether v matches.
func (s *StringMatch) Match(v string) bool {
	if s.kind == strRegex {
		return s.re.MatchString(v)
	}
	if s.ignoreCase {
		switch s.kind {
		case strExact:
			return strings.EqualFold(v, s.value)
		case strPrefix:
			return len(v) >= len(s.value) && strings.EqualFold(v[:len(s.value)], s.value)
		case strSuffix:
			return len(v) >= len(s.value) && strings.EqualFold(v[len(v)-len(s.value):], s.value)
		default:
			return strings.Contains(strings.ToLower(v), s.value)
		}
	}
	switch s.kind {
	case strExact:
		return v == s.value
	case strPrefix:
		return strings.HasPrefix(v, s.value)
	case strSuffix:
		return strings.HasSuffix(v, s.value)
	default:
		return strings.Contains(v, s.value)
	}
}

// HeaderMatch is a compiled HeaderMatcher. Pseudo-headers (:authority,
// :method, :path, :scheme) read the request line, as Envoy does.
type HeaderMatch struct {
	name      string // canonical header key or pseudo-header
	present   *bool  // present_match
	str       *StringMatch
	invert    bool
	missEmpty bool
}

// CompileHeaderMatch compiles one HeaderMatcher.
func CompileHeaderMatch(m *routev3.HeaderMatcher, path string) (*HeaderMatch, error) {
	if err := xdsfield.Check(m, path, "name", "exact_match", "safe_regex_match", "present_match",
		"prefix_match", "suffix_match", "contains_match", "string_match", "invert_match",
		"treat_missing_header_as_empty"); err != nil {
		return nil, err
	}
	if m.GetName() == "" {
		return nil, fmt.Errorf("%s.name: empty header name", path)
	}
	h := &HeaderMatch{name: m.GetName(), invert: m.GetInvertMatch(), missEmpty: m.GetTreatMissingHeaderAsEmpty()}
	if !strings.HasPrefix(h.name, ":") {
		h.name = http.CanonicalHeaderKey(h.name)
	}
	var err error
	switch p := m.GetHeaderMatchSpecifier().(type) {
	case nil:
		t := true // no specifier: the header must be present
		h.present = &t
	case *routev3.HeaderMatcher_PresentMatch:
		v := p.PresentMatch
		h.present = &v
	case *routev3.HeaderMatcher_ExactMatch:
		h.str = &StringMatch{kind: strExact, value: p.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		h.str = &StringMatch{kind: strPrefix, value: p.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		h.str = &StringMatch{kind: strSuffix, value: p.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		h.str = &StringMatch{kind: strContains, value: p.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		var re *regexp.Regexp
		re, err = compileRegex(p.SafeRegexMatch, path+".safe_regex_match")
		h.str = &StringMatch{kind: strRegex, re: re}
	case *routev3.HeaderMatcher_StringMatch:
		h.str, err = CompileStringMatch(p.StringMatch, path+".string_match")
	default:
		return nil, fmt.Errorf("%s: header matcher %T not supported by weft-proxy", path, p)
	}
	return h, err
}

// headerValue returns the header's value (multiple values joined with ","
// as Envoy does) and whether it is present.
func headerValue(r *http.Request, name string) (string, bool) {
	if name[0] == ':' {
		switch name {
		case ":authority", ":host":
			return r.Host, true
		case ":method":
			return r.Method, true
		case ":path":
			return r.URL.RequestURI(), true
		case ":scheme":
			if r.TLS != nil {
				return "https", true
			}
			if r.URL.Scheme != "" {
				return r.URL.Scheme, true
			}
			return "http", true
		}
		return "", false
	}
	vs, ok := r.Header[name]
	if !ok || len(vs) == 0 {
		return "", false
	}
	if len(vs) == 1 {
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// Match reports whether the request's headers satisfy the matcher.
func (h *HeaderMatch) Match(r *http.Request) bool {
	v, ok := headerValue(r, h.name)
	if !ok && h.missEmpty {
		v, ok = "", true
	}
	if h.present != nil {
		return (ok == *h.present) != h.invert
	}
	if !ok {
		// Envoy: a missing header never matches, even when inverted.
		return false
	}
	return h.str.Match(v) != h.invert
}

// queryMatch is a compiled QueryParameterMatcher.
type queryMatch struct {
	name    string
	present bool
	str     *StringMatch
}

func compileQueryMatch(m *routev3.QueryParameterMatcher, path string) (*queryMatch, error) {
	if m.GetName() == "" {
		return nil, fmt.Errorf("%s.name: empty query parameter name", path)
	}
	q := &queryMatch{name: m.GetName()}
	switch p := m.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_PresentMatch:
		q.present = p.PresentMatch
		if !q.present {
			return nil, fmt.Errorf("%s.present_match: must be true", path)
		}
	case *routev3.QueryParameterMatcher_StringMatch:
		s, err := CompileStringMatch(p.StringMatch, path+".string_match")
		if err != nil {
			return nil, err
		}
		q.str = s
	default:
		return nil, fmt.Errorf("%s: query parameter matcher needs string_match or present_match", path)
	}
	return q, nil
}

// match looks the parameter up in the raw query without building a map.
func (q *queryMatch) match(rawQuery string) bool {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != q.name {
			if !strings.ContainsAny(k, "%+") || unescape(k) != q.name {
				continue
			}
		}
		if q.present {
			return true
		}
		return q.str.Match(unescape(v))
	}
	return false
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	// net/url.QueryUnescape allocates; only reached for escaped values.
	out, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return out
}

// Fraction is a compiled FractionalPercent: Hit is true numerator times in
// denominator.
type Fraction struct {
	Num, Den uint64
}

// CompileFraction converts a FractionalPercent. nil is the proto default,
// 0% — as in Envoy, where an abort or delay without a percentage never fires.
func CompileFraction(p *typev3.FractionalPercent) Fraction {
	if p == nil {
		return Fraction{Num: 0, Den: 100}
	}
	f := Fraction{Num: uint64(p.GetNumerator()), Den: 100}
	switch p.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		f.Den = 10000
	case typev3.FractionalPercent_MILLION:
		f.Den = 1000000
	}
	if f.Num > f.Den {
		f.Num = f.Den
	}
	return f
}

func compileRuntimeFraction(p *corev3.RuntimeFractionalPercent) Fraction {
	// Runtime keys have no runtime layer here: the default value applies.
	return CompileFraction(p.GetDefaultValue())
}

// Hit draws a random number and reports whether it falls in the fraction.
func (f Fraction) Hit() bool {
	if f.Num >= f.Den {
		return true
	}
	if f.Num == 0 {
		return false
	}
	return rand.Uint64N(f.Den) < f.Num
}
