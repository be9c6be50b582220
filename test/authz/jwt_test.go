package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

const iss = "testing@secure.istio.io"

type signer struct {
	key  *ecdsa.PrivateKey
	kid  string
	jwks string
}

func newSigner(t testing.TB) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Use: "sig"}}})
	return &signer{key: k, kid: "k1", jwks: string(b)}
}

func (s *signer) token(t testing.TB, claims map[string]any) string {
	c := map[string]any{"iss": iss, "sub": iss, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithHeader("kid", s.kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	o, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := o.CompactSerialize()
	return tok
}

func requestAuthn(t testing.TB, spec string) *securityv1.RequestAuthentication {
	ra := &securityv1.RequestAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "jwt", Namespace: "default"}}
	var v any
	if err := yaml.Unmarshal([]byte(spec), &v); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(v)
	if err := protojson.Unmarshal(j, &ra.Spec); err != nil {
		t.Fatal(err)
	}
	return ra
}

// TestJWT is Istio's "JWT token" task against translate + the proxy:
// RequestAuthentication alone lets requests without a token through and
// refuses invalid tokens with 401; an ALLOW with requestPrincipals ["*"]
// then refuses requests without a token (403).
func TestJWT(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	const uri = "https://example.test/jwks.json"
	ra := requestAuthn(t, `{selector: {matchLabels: {app: httpbin}}, jwtRules: [{issuer: "`+iss+`", jwksUri: "`+uri+`"}]}`)
	withKeys := func(snap *model.Snapshot) {
		snap.RequestAuthentications = append(snap.RequestAuthentications, ra)
		snap.JWKS = map[string]string{uri: s.jwks}
	}
	auth := func(tok string) []string { return []string{"Authorization: Bearer " + tok} }
	good := s.token(t, map[string]any{"groups": []string{"group1"}, "aud": "httpbin"})

	m, _ := build(t, nil, withKeys)
	for _, tc := range []struct {
		name string
		hdr  []string
		code int
		body string
	}{
		{"valid", auth(good), 503, ""},
		{"missing", nil, 503, ""},
		{"invalid", auth("deadbeef"), 401, "Jwt is not in the form"},
		{"wrong key", auth(other.token(t, nil)), 401, "Jwt verification fails"},
		{"expired", auth(s.token(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), 401, "Jwt is expired"},
	} {
		code, body := do(t, m, call{target: "/headers", header: tc.hdr})
		if code != tc.code || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}

	// Never fetched: tokens fail closed, requests without one pass.
	m, _ = build(t, nil, func(snap *model.Snapshot) { snap.RequestAuthentications = append(snap.RequestAuthentications, ra) })
	if code, _ := do(t, m, call{target: "/headers", header: auth(good)}); code != 401 {
		t.Errorf("unfetched JWKS: valid-looking token got %d, want 401", code)
	}
	if code, _ := do(t, m, call{target: "/headers"}); code != 503 {
		t.Errorf("unfetched JWKS: no token got %d, want through", code)
	}

	// require-jwt: requestPrincipals ["*"].
	req := policy(t, "require-jwt", `{selector: {matchLabels: {app: httpbin}}, action: ALLOW, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`)
	m, _ = build(t, nil, withKeys, req)
	if !allowed(t, m, call{target: "/headers", header: auth(good)}) {
		t.Error("valid token refused")
	}
	if allowed(t, m, call{target: "/headers"}) {
		t.Error("missing token allowed")
	}
	if code, _ := do(t, m, call{target: "/headers", header: auth("deadbeef")}); code != 401 {
		t.Errorf("invalid token: %d, want 401", code)
	}
}

// TestRequestAuthConditions: request.auth.principal, audiences, presenter
// and claims from a verified token.
func TestRequestAuthConditions(t *testing.T) {
	s := newSigner(t)
	ra := requestAuthn(t, `{jwtRules: [{issuer: "`+iss+`", jwks: '`+s.jwks+`'}]}`)
	withRA := func(snap *model.Snapshot) { snap.RequestAuthentications = append(snap.RequestAuthentications, ra) }
	tok := s.token(t, map[string]any{"aud": []string{"a1", "a2"}, "azp": "web", "groups": []string{"g1", "g2"},
		"nested": map[string]any{"key": "v1"}, "role": "admin"})
	plain := s.token(t, nil)
	for _, tc := range []struct {
		name string
		rule string
	}{
		{"requestPrincipals", `from: [{source: {requestPrincipals: ["` + iss + `/` + iss + `"]}}]`},
		{"requestPrincipals issuer wildcard", `from: [{source: {requestPrincipals: ["` + iss + `/*"]}}]`},
		{"notRequestPrincipals", `from: [{source: {notRequestPrincipals: ["other/*"], requestPrincipals: ["*"]}}]`},
		{"when request.auth.principal", `when: [{key: request.auth.principal, values: ["` + iss + `/` + iss + `"]}]`},
		{"when request.auth.audiences", `when: [{key: request.auth.audiences, values: ["a2"]}]`},
		{"when request.auth.presenter", `when: [{key: request.auth.presenter, values: ["web"]}]`},
		{"when request.auth.claims list", `when: [{key: "request.auth.claims[groups]", values: ["g2"]}]`},
		{"when request.auth.claims string", `when: [{key: "request.auth.claims[role]", values: ["adm*"]}]`},
		{"when request.auth.claims nested", `when: [{key: "request.auth.claims[nested][key]", values: ["v1"]}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := build(t, nil, withRA, policy(t, "p", "action: ALLOW\nrules:\n- "+indent(tc.rule)))
			if !allowed(t, m, call{target: "/get", header: []string{"Authorization: Bearer " + tok}}) {
				t.Error("matching token refused")
			}
			if strings.HasPrefix(tc.name, "requestPrincipals") || strings.Contains(tc.name, "principal") || strings.Contains(tc.name, "notRequest") {
				if allowed(t, m, call{target: "/get"}) {
					t.Error("no token allowed")
				}
				return
			}
			if allowed(t, m, call{target: "/get", header: []string{"Authorization: Bearer " + plain}}) {
				t.Error("token without the claim allowed")
			}
		})
	}
}
