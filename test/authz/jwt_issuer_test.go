package authz

import (
	"testing"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// A jwtRule with jwksUri and no issuer is valid in Istio (validateJwtRule:
// issuer or jwksUri) and its provider has no issuer, so a token of any
// issuer signed by those keys is accepted; before, translate dropped the
// rule and such tokens were refused as from an unknown issuer.
func TestJWTRuleWithoutIssuer(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	const uri = "https://example.test/any-issuer/jwks.json"
	ra := requestAuthn(t, `{selector: {matchLabels: {app: httpbin}}, jwtRules: [{jwksUri: "`+uri+`"}]}`)
	req := policy(t, "require-jwt", `{selector: {matchLabels: {app: httpbin}}, action: ALLOW, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`)
	m, _ := build(t, nil, func(snap *model.Snapshot) {
		snap.RequestAuthentications = append(snap.RequestAuthentications, ra)
		snap.JWKS = map[string]string{uri: s.jwks}
	}, req)
	auth := func(tok string) []string { return []string{"Authorization: Bearer " + tok} }
	if !allowed(t, m, call{target: "/headers", header: auth(s.token(t, map[string]any{"iss": "https://anyone.example"}))}) {
		t.Error("token of another issuer signed by the rule's keys refused")
	}
	if code, _ := do(t, m, call{target: "/headers", header: auth(other.token(t, nil))}); code != 401 {
		t.Errorf("token signed by other keys: %d, want 401", code)
	}
	if allowed(t, m, call{target: "/headers"}) {
		t.Error("missing token allowed under requestPrincipals [*]")
	}
}
