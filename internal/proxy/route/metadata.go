package route

// Metadata matching: Envoy's MetadataMatcher with its ValueMatcher, for
// route matches on dynamic metadata (Istio's @request.auth.claims at
// gateways) and for RBAC principals on JWT claims. Values are JSON's
// (string, float64, bool, nil, []any, map[string]any).

import (
	"context"
	"fmt"
	"net/http"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// valueMatch is a compiled envoy.type.matcher.v3.ValueMatcher over a
// metadata value (JSON types).
type valueMatch struct {
	kind    uint8
	str     *StringMatch
	b       bool
	lo, hi  float64 // double range [lo, hi); exact when lo == hi
	exact   bool
	list    *valueMatch // list_match.one_of
	or      []valueMatch
	present bool
}

const (
	vNull uint8 = iota
	vDouble
	vString
	vBool
	vPresent
	vList
	vOr
)

// maxMetaDepth bounds nesting of or/list matchers.
const maxMetaDepth = 64

// Lookup finds a dynamic metadata value: the namespace (filter name) and a path of
// struct keys. Implementations must accept being called on nil.
type Lookup interface {
	Lookup(filter string, path []string) (any, bool)
}

// MetadataMatch is a compiled MetadataMatcher; immutable.
type MetadataMatch struct {
	filter string
	path   []string
	v      valueMatch
	invert bool
}

// CompileMetadataMatch compiles m; path names it in errors.
func CompileMetadataMatch(m *matcherv3.MetadataMatcher, path string) (*MetadataMatch, error) {
	if err := xdsfield.Check(m, path, "filter", "path", "value", "invert"); err != nil {
		return nil, err
	}
	out := &MetadataMatch{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, s := range m.GetPath() {
		if s.GetKey() == "" {
			return nil, fmt.Errorf("%s.path[%d].key: empty", path, i)
		}
		out.path = append(out.path, s.GetKey())
	}
	v, err := compileValue(m.GetValue(), path+".value", 0)
	if err != nil {
		return nil, err
	}
	out.v = v
	return out, nil
}

// Match reports whether the metadata l holds matches (nil l: no metadata).
func (m *MetadataMatch) Match(l Lookup) bool {
	var v any
	ok := false
	if l != nil {
		v, ok = l.Lookup(m.filter, m.path)
	}
	return m.v.match(v, ok) != m.invert
}

func compileValue(m *matcherv3.ValueMatcher, path string, depth int) (valueMatch, error) {
	if depth > maxMetaDepth {
		return valueMatch{}, fmt.Errorf("%s: nested too deeply", path)
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		return valueMatch{kind: vNull}, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		d := p.DoubleMatch
		if r := d.GetRange(); r != nil {
			return valueMatch{kind: vDouble, lo: r.GetStart(), hi: r.GetEnd()}, nil
		}
		return valueMatch{kind: vDouble, lo: d.GetExact(), hi: d.GetExact(), exact: true}, nil
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := CompileStringMatch(p.StringMatch, path+".string_match")
		return valueMatch{kind: vString, str: s}, err
	case *matcherv3.ValueMatcher_BoolMatch:
		return valueMatch{kind: vBool, b: p.BoolMatch}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return valueMatch{kind: vPresent, present: p.PresentMatch}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return valueMatch{}, fmt.Errorf("%s.list_match: one_of is required", path)
		}
		v, err := compileValue(one, path+".list_match.one_of", depth+1)
		return valueMatch{kind: vList, list: &v}, err
	case *matcherv3.ValueMatcher_OrMatch:
		out := valueMatch{kind: vOr}
		for i, c := range p.OrMatch.GetValueMatchers() {
			v, err := compileValue(c, fmt.Sprintf("%s.or_match.value_matchers[%d]", path, i), depth+1)
			if err != nil {
				return valueMatch{}, err
			}
			out.or = append(out.or, v)
		}
		return out, nil
	default:
		return valueMatch{}, fmt.Errorf("%s: value matcher %T not supported by weft-proxy", path, p)
	}
}

// match reports whether v (present says whether it exists) matches.
func (m *valueMatch) match(v any, present bool) bool {
	switch m.kind {
	case vPresent:
		return present == m.present
	case vOr:
		for i := range m.or {
			if m.or[i].match(v, present) {
				return true
			}
		}
		return false
	}
	if !present {
		return false
	}
	switch m.kind {
	case vNull:
		return v == nil
	case vDouble:
		f, ok := v.(float64)
		if !ok {
			return false
		}
		if m.exact {
			return f == m.lo
		}
		return f >= m.lo && f < m.hi
	case vString:
		s, ok := v.(string)
		return ok && m.str.Match(s)
	case vBool:
		b, ok := v.(bool)
		return ok && b == m.b
	case vList:
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if m.list.match(e, true) {
				return true
			}
		}
	}
	return false
}

type metaKey struct{}

// WithMetadata returns r with the request's dynamic metadata attached, for
// matching routes on it (a filter that changed the metadata re-matches the
// route with it, as Envoy's clear_route_cache does).
func WithMetadata(r *http.Request, l Lookup) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), metaKey{}, l))
}

func metadataFrom(r *http.Request) Lookup {
	l, _ := r.Context().Value(metaKey{}).(Lookup)
	return l
}
