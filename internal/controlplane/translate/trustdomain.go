package translate

import (
	"slices"
	"strings"
)

// trustBundle is the mesh's trust domain followed by its aliases
// (meshConfig.trustDomainAliases): identities of any of them are the same
// workload, which is how a mesh migrates from one trust domain to another.
type trustBundle []string

func (b *builder) trustBundle() trustBundle {
	return append(trustBundle{b.trustDomain()}, b.mesh.GetTrustDomainAliases()...)
}

// migrate rewrites an authorization term the way Istio's MigrateTrustDomain
// does before building RBAC: a principal naming the local trust domain, an
// alias or "cluster.local" is expanded to one principal per trust domain of
// the bundle, and a trust domain value of the bundle to the whole bundle.
func (tb trustBundle) migrate(t term) term {
	if len(tb) == 0 {
		return t
	}
	switch t.key {
	case keySrcPrincipal:
		t.values = tb.principals(t.values)
		t.notValues = tb.principals(t.notValues)
	case keySrcTD:
		t.values = tb.expand(t.values)
		t.notValues = tb.expand(t.notValues)
	}
	return t
}

func (tb trustBundle) principals(ps []string) []string {
	if len(ps) == 0 {
		return ps
	}
	var out []string
	for _, p := range ps {
		parts := strings.Split(p, "/")
		// Not td/ns/x/sa/y, or a "*" trust domain: the policy does not
		// check the trust domain, keep it.
		if len(parts) != 5 || parts[0] == "*" {
			out = append(out, p)
			continue
		}
		td := parts[0]
		if td != "cluster.local" && !tb.matches(td) {
			out = append(out, p) // a foreign trust domain stays as written
			continue
		}
		var mine []string
		for _, d := range tb {
			np := p
			if !suffixPattern(d, td) {
				np = d + "/" + strings.Join(parts[1:], "/")
			}
			if !slices.Contains(mine, np) {
				mine = append(mine, np)
			}
		}
		out = append(out, mine...)
	}
	return out
}

func (tb trustBundle) expand(tds []string) []string {
	var out []string
	for _, v := range tds {
		if slices.Contains(tb, v) {
			out = append(out, tb...)
		} else {
			out = append(out, v)
		}
	}
	var uniq []string
	for _, v := range out {
		if !slices.Contains(uniq, v) {
			uniq = append(uniq, v)
		}
	}
	return uniq
}

// matches is Istio's trust domain comparison: exact, "*", or a "*" prefix
// or suffix pattern on either side.
func (tb trustBundle) matches(td string) bool {
	for _, d := range tb {
		if td == d || d == "*" || prefixPattern(td, d) || prefixPattern(d, td) || suffixPattern(td, d) || suffixPattern(d, td) {
			return true
		}
	}
	return false
}

// prefixPattern: pattern "abc*" matches s starting with "abc".
func prefixPattern(s, pattern string) bool {
	p, ok := strings.CutSuffix(pattern, "*")
	return ok && strings.HasPrefix(s, p)
}

// suffixPattern: pattern "*abc" matches s ending with "abc".
func suffixPattern(s, pattern string) bool {
	p, ok := strings.CutPrefix(pattern, "*")
	return ok && strings.HasSuffix(s, p)
}
