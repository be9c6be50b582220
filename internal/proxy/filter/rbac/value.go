package rbac

import (
	"fmt"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/route"
)

// valueMatch is a compiled envoy.type.matcher.v3.ValueMatcher over a
// metadata value (JSON types).
type valueMatch struct {
	kind    uint8
	str     *route.StringMatch
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

func compileValue(m *matcherv3.ValueMatcher, path string, depth int) (valueMatch, error) {
	if depth > maxDepth {
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
		s, err := route.CompileStringMatch(p.StringMatch, path+".string_match")
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
