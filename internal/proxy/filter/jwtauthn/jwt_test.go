package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

const issuer = "testing@secure.istio.io"

var t0 = time.Unix(1_800_000_000, 0)

type key struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	kid  string
}

var (
	keysOnce sync.Once
	keys     map[jose.SignatureAlgorithm]key
)

func testKeys(t testing.TB) map[jose.SignatureAlgorithm]key {
	keysOnce.Do(func() {
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ek3, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, dk, _ := ed25519.GenerateKey(rand.Reader)
		keys = map[jose.SignatureAlgorithm]key{
			jose.RS256: {jose.RS256, rk, "rsa"}, jose.PS384: {jose.PS384, rk, "rsa"},
			jose.ES256: {jose.ES256, ek, "ec256"}, jose.ES384: {jose.ES384, ek3, "ec384"},
			jose.EdDSA: {jose.EdDSA, dk, "ed"},
		}
	})
	return keys
}

func jwks(t testing.TB, ks ...key) string {
	var set jose.JSONWebKeySet
	seen := map[string]bool{}
	for _, k := range ks {
		if seen[k.kid] {
			continue
		}
		seen[k.kid] = true
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sign(t testing.TB, k key, claims map[string]any, kid bool) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid {
		opts = opts.WithHeader("kid", k.kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": issuer, "sub": issuer, "exp": float64(t0.Add(time.Hour).Unix()), "iat": float64(t0.Unix())}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// istioConfig is the filter config Istio sends for one JWTRule.
func istioConfig(jwksJSON string, mod func(*jwtv3.JwtProvider)) *jwtv3.JwtAuthentication {
	p := &jwtv3.JwtProvider{Issuer: issuer, PayloadInMetadata: "payload",
		JwksSourceSpecifier:        &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: jwksJSON}}},
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"permission", "scope"}}}
	if mod != nil {
		mod(p)
	}
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": p},
		Rules: []*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
				RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}}}}}},
		BypassCorsPreflight: true,
	}
}

// next records what reached the rest of the chain.
type next struct {
	reached bool
	header  http.Header
	meta    map[string]any
}

func (n *next) Serve(s *filter.Stream) error {
	n.reached = true
	n.header = s.Req.Header.Clone()
	n.meta = s.Meta.Get(MetadataNamespace)
	s.W.WriteHeader(200)
	return nil
}

func run(t testing.TB, f *Filter, r *http.Request) (*httptest.ResponseRecorder, *next, *filter.Info) {
	w := httptest.NewRecorder()
	n := &next{}
	s := &filter.Stream{W: w, Req: r, Info: &filter.Info{}}
	if err := s.Start([]filter.Filter{f, n}); err != nil {
		t.Fatal(err)
	}
	return w, n, s.Info
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "http://httpbin/headers", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func TestVerify(t *testing.T) {
	ks := testKeys(t)
	all := jwks(t, ks[jose.RS256], ks[jose.ES256], ks[jose.ES384], ks[jose.EdDSA])
	f, err := New(istioConfig(all, nil), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name   string
		tok    string
		status int
		body   string
	}{
		{"RS256", sign(t, ks[jose.RS256], claims(nil), true), 200, ""},
		{"PS384", sign(t, ks[jose.PS384], claims(nil), true), 200, ""},
		{"ES256", sign(t, ks[jose.ES256], claims(nil), true), 200, ""},
		{"ES384 without kid (every key is tried)", sign(t, ks[jose.ES384], claims(nil), false), 200, ""},
		{"EdDSA", sign(t, ks[jose.EdDSA], claims(nil), true), 200, ""},
		{"missing token passes", "", 200, ""},
		{"expired", sign(t, ks[jose.RS256], claims(map[string]any{"exp": float64(t0.Add(-2 * time.Minute).Unix())}), true), 401, "Jwt is expired"},
		{"expired within the 60s clock skew", sign(t, ks[jose.RS256], claims(map[string]any{"exp": float64(t0.Add(-30 * time.Second).Unix())}), true), 200, ""},
		{"not yet valid", sign(t, ks[jose.RS256], claims(map[string]any{"nbf": float64(t0.Add(2 * time.Minute).Unix())}), true), 401, "Jwt not yet valid"},
		{"nbf within skew", sign(t, ks[jose.RS256], claims(map[string]any{"nbf": float64(t0.Add(30 * time.Second).Unix())}), true), 200, ""},
		{"no exp is accepted (Envoy)", sign(t, ks[jose.RS256], claims(map[string]any{"exp": nil}), true), 200, ""},
		{"exp not a number", sign(t, ks[jose.RS256], claims(map[string]any{"exp": "soon"}), true), 401, "Jwt is not in the form"},
		{"other issuer", sign(t, ks[jose.RS256], claims(map[string]any{"iss": "evil"}), true), 401, "Jwt issuer is not configured"},
		{"unknown key", sign(t, key{jose.RS256, other, "rsa"}, claims(nil), true), 401, "Jwt verification fails"},
		{"unknown kid", sign(t, key{jose.RS256, other, "nope"}, claims(nil), true), 401, "Jwks doesn't have key"},
		{"garbage", "deadbeef", 401, "Jwt is not in the form of Header.Payload.Signature"},
		{"tampered payload", tamper(sign(t, ks[jose.RS256], claims(nil), true)), 401, "Jwt verification fails"},
		{"alg none", unsigned(claims(nil)), 401, "Jwt is not in the form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, n, info := run(t, f, bearer(tc.tok))
			if w.Code != tc.status || !strings.HasPrefix(w.Body.String(), tc.body) {
				t.Fatalf("status %d body %q, want %d %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
			if tc.status == 401 {
				if n.reached {
					t.Error("a rejected request reached the next filter")
				}
				if !strings.HasPrefix(info.Details, "jwt_authn_access_denied{") || w.Header().Get("Www-Authenticate") == "" {
					t.Errorf("details %q www-authenticate %q", info.Details, w.Header().Get("Www-Authenticate"))
				}
				return
			}
			if tc.tok == "" {
				if n.meta != nil {
					t.Errorf("no token, but metadata %v", n.meta)
				}
				return
			}
			p, _ := n.meta["payload"].(map[string]any)
			if p["iss"] != issuer || p["sub"] != issuer {
				t.Errorf("payload metadata %v", n.meta)
			}
			if n.header.Get("Authorization") != "" {
				t.Error("forward is false: the token must be removed")
			}
		})
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b, _ := json.Marshal(claims(map[string]any{"sub": "admin"}))
	parts[1] = b64(b)
	return strings.Join(parts, ".")
}

func unsigned(c map[string]any) string {
	h := b64([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(c)
	return h + "." + b64(b) + "."
}

func TestProviderOptions(t *testing.T) {
	ks := testKeys(t)
	k := ks[jose.ES256]
	f, err := New(istioConfig(jwks(t, k), func(p *jwtv3.JwtProvider) {
		p.Audiences = []string{"aud1", "aud2"}
		p.Forward = true
		p.ForwardPayloadHeader = "x-jwt-payload"
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "x-jwt", ValuePrefix: "Token "}}
		p.FromParams = []string{"token"}
		p.FromCookies = []string{"session"}
		p.ClaimToHeaders = []*jwtv3.JwtClaimToHeader{{HeaderName: "x-group", ClaimName: "nested.group"}, {HeaderName: "x-sub", ClaimName: "sub"}}
	}), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, k, claims(map[string]any{"aud": []any{"x", "aud2"}, "nested": map[string]any{"group": "admins"}, "scope": "read write"}), true)
	for name, r := range map[string]*http.Request{
		"header prefix": func() *http.Request { r := bearer(""); r.Header.Set("x-jwt", "Token "+good); return r }(),
		"query param":   httptest.NewRequest("GET", "http://h/p?token="+good, nil),
		"cookie": func() *http.Request {
			r := bearer("")
			r.AddCookie(&http.Cookie{Name: "session", Value: good})
			return r
		}(),
	} {
		r.Header.Set("x-group", "forged")
		w, n, _ := run(t, f, r)
		if w.Code != 200 || n.meta == nil {
			t.Fatalf("%s: status %d meta %v", name, w.Code, n.meta)
		}
		if n.header.Get("X-Group") != "admins" || n.header.Get("X-Sub") != issuer || n.header.Get("X-Jwt-Payload") == "" {
			t.Errorf("%s: claim headers %v", name, n.header)
		}
		p := n.meta["payload"].(map[string]any)
		if s, _ := p["scope"].([]any); len(s) != 2 || s[0] != "read" {
			t.Errorf("%s: scope not normalized to a list: %v", name, p["scope"])
		}
	}
	// The default Authorization header is not a location once others are set.
	if w, n, _ := run(t, f, bearer(good)); w.Code != 200 || n.meta != nil {
		t.Errorf("Authorization is not a configured location: %d %v", w.Code, n.meta)
	}
	// Forged output headers never pass without a token.
	r := bearer("")
	r.Header.Set("x-group", "forged")
	r.Header.Set("x-jwt-payload", "forged")
	if _, n, _ := run(t, f, r); n.header.Get("X-Group") != "" || n.header.Get("X-Jwt-Payload") != "" {
		t.Errorf("forged claim headers passed: %v", n.header)
	}
	bad := sign(t, k, claims(map[string]any{"aud": "other"}), true)
	r = bearer("")
	r.Header.Set("x-jwt", "Token "+bad)
	if w, _, _ := run(t, f, r); w.Code != 401 || !strings.Contains(w.Body.String(), "Audiences") {
		t.Errorf("wrong audience: %d %q", w.Code, w.Body.String())
	}
}

// TestKeyRotation: a new config with both keys accepts tokens of each;
// the next without the old key refuses its tokens.
func TestKeyRotation(t *testing.T) {
	ks := testKeys(t)
	oldK, newK := ks[jose.RS256], ks[jose.ES256]
	now := Options{Now: func() time.Time { return t0 }}
	both, _ := New(istioConfig(jwks(t, oldK, newK), nil), now)
	onlyNew, _ := New(istioConfig(jwks(t, newK), nil), now)
	oldTok, newTok := sign(t, oldK, claims(nil), true), sign(t, newK, claims(nil), true)
	for _, tc := range []struct {
		f    *Filter
		tok  string
		want int
	}{{both, oldTok, 200}, {both, newTok, 200}, {onlyNew, newTok, 200}, {onlyNew, oldTok, 401}} {
		if w, _, _ := run(t, tc.f, bearer(tc.tok)); w.Code != tc.want {
			t.Errorf("status %d, want %d", w.Code, tc.want)
		}
	}
}

// TestMultipleIssuers is Istio's shape for two jwtRules: a token of either
// issuer passes, no token passes, a token of a third issuer is refused.
func TestMultipleIssuers(t *testing.T) {
	ks := testKeys(t)
	a, b := ks[jose.RS256], ks[jose.ES256]
	mk := func(iss string, k key) *jwtv3.JwtProvider {
		return &jwtv3.JwtProvider{Issuer: iss, PayloadInMetadata: "payload",
			JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: jwks(t, k)}}}}
	}
	pn := func(n string) *jwtv3.JwtRequirement {
		return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}}
	}
	anyOf := func(rs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
		return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: rs}}}
	}
	missing := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}
	cfg := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": mk("iss-a", a), "origins-1": mk("iss-b", b)},
		Rules: []*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: anyOf(pn("origins-0"), pn("origins-1"),
				&jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: []*jwtv3.JwtRequirement{
					anyOf(pn("origins-0"), missing), anyOf(pn("origins-1"), missing)}}}})}}},
	}
	f, err := New(cfg, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok  string
		want int
	}{
		{sign(t, a, claims(map[string]any{"iss": "iss-a"}), true), 200},
		{sign(t, b, claims(map[string]any{"iss": "iss-b"}), true), 200},
		{"", 200},
		{sign(t, a, claims(map[string]any{"iss": "iss-c"}), true), 401},
		{sign(t, b, claims(map[string]any{"iss": "iss-a"}), true), 401},
	} {
		if w, _, _ := run(t, f, bearer(tc.tok)); w.Code != tc.want {
			t.Errorf("token %.20s…: status %d, want %d", tc.tok, w.Code, tc.want)
		}
	}
}

func TestNACK(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*jwtv3.JwtProvider)
		want string
	}{
		{func(p *jwtv3.JwtProvider) {
			p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{}}
		}, "remote_jwks"},
		{func(p *jwtv3.JwtProvider) {
			p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "{"}}}
		}, "invalid JWKS"},
		{func(p *jwtv3.JwtProvider) { p.RequireExpiration = true }, "require_expiration"},
	} {
		_, err := New(istioConfig(`{"keys":[]}`, tc.mod), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
