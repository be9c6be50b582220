// Package jwtauthn is Envoy's envoy.filters.http.jwt_authn for weft-proxy:
// it verifies JSON Web Tokens against inline JWKS (the control plane
// fetches jwksUri and inlines the keys, as istiod does), checks issuer,
// audiences and exp/nbf with clock skew, evaluates the requirement tree and
// records the verified payload in dynamic metadata for RBAC and routing.
//
// Istio's semantics follow from the requirement it sends: a request with
// no token passes (allow_missing), one with an invalid token is answered
// 401; only an AuthorizationPolicy can require a token. Signatures are
// checked by github.com/go-jose/go-jose/v4 (RS*, PS*, ES*, EdDSA; never
// "none" or HMAC).
package jwtauthn

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// algorithms are the JWS algorithms accepted (Envoy's asymmetric set).
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// status is why verification failed, with Envoy's messages.
type status uint8

const (
	stOK status = iota
	stMissing
	stBadFormat
	stUnknownIssuer
	stExpired
	stNotYetValid
	stAudience
	stVerifyFail
	stNoKey
)

func (s status) message() string {
	switch s {
	case stMissing:
		return "Jwt is missing"
	case stBadFormat:
		return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	case stUnknownIssuer:
		return "Jwt issuer is not configured"
	case stExpired:
		return "Jwt is expired"
	case stNotYetValid:
		return "Jwt not yet valid"
	case stAudience:
		return "Audiences in Jwt are not allowed"
	case stNoKey:
		return "Jwks doesn't have key to match kid or alg from Jwt"
	case stVerifyFail:
		return "Jwt verification fails"
	}
	return "Jwt is valid"
}

// location is where a provider looks for its token.
type location struct {
	kind   uint8 // locHeader, locParam, locCookie
	name   string
	prefix string
}

const (
	locHeader uint8 = iota
	locParam
	locCookie
)

// provider is one compiled JwtProvider.
type provider struct {
	name       string
	issuer     string
	audiences  []string
	keys       jose.JSONWebKeySet
	locs       []location
	forward    bool
	payloadHdr string
	metaKey    string
	spaceDelim map[string]bool
	claimHdrs  []claimHeader
	skew       time.Duration
	clearRoute bool // re-match the route once the payload is known
}

type claimHeader struct {
	header string   // canonical
	claim  []string // nested with "."
}

func compileProvider(name string, p *jwtv3.JwtProvider, path string) (*provider, error) {
	if err := xdsfield.Check(p, path, "issuer", "audiences", "local_jwks", "forward", "from_headers",
		"from_params", "from_cookies", "forward_payload_header", "payload_in_metadata",
		"normalize_payload_in_metadata", "claim_to_headers", "clear_route_cache", "clock_skew_seconds"); err != nil {
		if p.GetRemoteJwks() != nil {
			return nil, fmt.Errorf("%s.remote_jwks: not supported by weft-proxy (the control plane inlines the JWKS as local_jwks)", path)
		}
		return nil, err
	}
	pr := &provider{name: name, issuer: p.GetIssuer(), audiences: p.GetAudiences(), forward: p.GetForward(),
		payloadHdr: p.GetForwardPayloadHeader(), metaKey: p.GetPayloadInMetadata(), skew: 60 * time.Second,
		clearRoute: p.GetClearRouteCache()}
	if p.GetClockSkewSeconds() != 0 {
		pr.skew = time.Duration(p.GetClockSkewSeconds()) * time.Second
	}
	lj := p.GetLocalJwks()
	if lj == nil {
		return nil, fmt.Errorf("%s.local_jwks: required", path)
	}
	if lj.GetFilename() != "" || lj.GetEnvironmentVariable() != "" {
		return nil, fmt.Errorf("%s.local_jwks: only inline_string/inline_bytes are supported by weft-proxy", path)
	}
	raw := lj.GetInlineBytes()
	if raw == nil {
		raw = []byte(lj.GetInlineString())
	}
	if err := json.Unmarshal(raw, &pr.keys); err != nil {
		return nil, fmt.Errorf("%s.local_jwks: invalid JWKS: %w", path, err)
	}
	for i, k := range pr.keys.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, fmt.Errorf("%s.local_jwks: key %d (%q) is not a valid public key", path, i, k.KeyID)
		}
	}
	for i, h := range p.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("%s.from_headers[%d].name: empty", path, i)
		}
		pr.locs = append(pr.locs, location{kind: locHeader, name: http.CanonicalHeaderKey(h.GetName()), prefix: h.GetValuePrefix()})
	}
	for _, q := range p.GetFromParams() {
		pr.locs = append(pr.locs, location{kind: locParam, name: q})
	}
	for _, c := range p.GetFromCookies() {
		pr.locs = append(pr.locs, location{kind: locCookie, name: c})
	}
	if len(pr.locs) == 0 {
		// Envoy's defaults: the Authorization bearer token, or access_token.
		pr.locs = []location{{kind: locHeader, name: "Authorization", prefix: "Bearer "}, {kind: locParam, name: "access_token"}}
	}
	if n := p.GetNormalizePayloadInMetadata(); n != nil {
		pr.spaceDelim = map[string]bool{}
		for _, c := range n.GetSpaceDelimitedClaims() {
			pr.spaceDelim[c] = true
		}
	}
	for i, ch := range p.GetClaimToHeaders() {
		if ch.GetHeaderName() == "" || ch.GetClaimName() == "" {
			return nil, fmt.Errorf("%s.claim_to_headers[%d]: header_name and claim_name are required", path, i)
		}
		pr.claimHdrs = append(pr.claimHdrs, claimHeader{http.CanonicalHeaderKey(ch.GetHeaderName()), strings.Split(ch.GetClaimName(), ".")})
	}
	return pr, nil
}

// token finds the provider's token in r, and where.
func (p *provider) token(r *http.Request) (tok string, loc *location) {
	for i := range p.locs {
		l := &p.locs[i]
		switch l.kind {
		case locHeader:
			for _, v := range r.Header[l.name] {
				if l.prefix == "" {
					return strings.TrimSpace(v), l
				}
				if len(v) >= len(l.prefix) && strings.EqualFold(v[:len(l.prefix)], l.prefix) {
					t := strings.TrimSpace(v[len(l.prefix):])
					// Envoy stops at a comma: other credentials may follow.
					if i := strings.IndexByte(t, ','); i >= 0 {
						t = t[:i]
					}
					return t, l
				}
			}
		case locParam:
			if r.URL.RawQuery != "" {
				if v := r.URL.Query().Get(l.name); v != "" {
					return v, l
				}
			}
		case locCookie:
			if c, err := r.Cookie(l.name); err == nil && c.Value != "" {
				return c.Value, l
			}
		}
	}
	return "", nil
}

// verified is a token that passed a provider's checks.
type verified struct {
	claims  map[string]any
	payload []byte
}

var errNoKey = errors.New("no key")

// verify checks tok against the provider at time now.
func (p *provider) verify(tok string, now time.Time) (*verified, status) {
	if strings.Count(tok, ".") != 2 {
		return nil, stBadFormat
	}
	jws, err := jose.ParseSignedCompact(tok, algorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, stBadFormat
	}
	claims, raw, st := unverifiedClaims(jws)
	if st != stOK {
		return nil, st
	}
	if iss, _ := claims["iss"].(string); p.issuer != "" && iss != p.issuer {
		return nil, stUnknownIssuer
	}
	payload, err := p.check(jws)
	if err != nil {
		if errors.Is(err, errNoKey) {
			return nil, stNoKey
		}
		return nil, stVerifyFail
	}
	_ = raw
	if st := p.times(claims, now); st != stOK {
		return nil, st
	}
	if len(p.audiences) > 0 && !audienceOK(claims["aud"], p.audiences) {
		return nil, stAudience
	}
	return &verified{claims: claims, payload: payload}, stOK
}

// unverifiedClaims decodes the payload (only to read iss before choosing
// a provider; nothing is trusted until the signature is verified).
func unverifiedClaims(jws *jose.JSONWebSignature) (map[string]any, []byte, status) {
	raw := jws.UnsafePayloadWithoutVerification()
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil || claims == nil {
		return nil, nil, stBadFormat
	}
	return claims, raw, stOK
}

// check verifies the signature with the key named by kid, or with every
// key when the token names none (Envoy's behaviour).
func (p *provider) check(jws *jose.JSONWebSignature) ([]byte, error) {
	h := jws.Signatures[0].Header
	var keys []jose.JSONWebKey
	if h.KeyID != "" {
		keys = p.keys.Key(h.KeyID)
	} else {
		keys = p.keys.Keys
	}
	tried := false
	for i := range keys {
		k := &keys[i]
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		tried = true
		if payload, err := jws.Verify(k); err == nil {
			return payload, nil
		}
	}
	if !tried {
		return nil, errNoKey
	}
	return nil, errors.New("signature")
}

func (p *provider) times(claims map[string]any, now time.Time) status {
	if exp, ok := numericDate(claims["exp"]); ok && now.After(exp.Add(p.skew)) {
		return stExpired
	} else if _, present := claims["exp"]; present && !ok {
		return stBadFormat
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(p.skew).Before(nbf) {
		return stNotYetValid
	} else if _, present := claims["nbf"]; present && !ok {
		return stBadFormat
	}
	return stOK
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e12 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func audienceOK(aud any, allowed []string) bool {
	has := func(s string) bool {
		for _, a := range allowed {
			if a == s {
				return true
			}
		}
		return false
	}
	switch a := aud.(type) {
	case string:
		return has(a)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && has(s) {
				return true
			}
		}
	}
	return false
}
