package config

import "testing"

// TestValidateRequestAuthenticationIstioParity: one case per
// RequestAuthentication rule brought to Istio 1.31's (validateJwtRule and
// warnPrivateJwksKeys in pkg/config/validation/validation.go).
func TestValidateRequestAuthenticationIstioParity(t *testing.T) {
	ra := func(rule string) string { return doc(sec1, "RequestAuthentication", "  jwtRules:\n  - "+rule+"\n") }
	const pub = `{"keys":[{"kty":"RSA","e":"AQAB","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}`
	for _, c := range []struct {
		name, src  string
		want, warn string
	}{
		// validateJwtRule: issuer or jwksUri; an empty issuer accepts any.
		{name: "jwksUri without issuer accepted", src: ra("jwksUri: https://example.com/jwks.json")},
		{name: "neither issuer nor jwksUri", src: ra("fromParams: [t]"), want: "issuer or jwksUri must be non-empty string"},
		// Not a webhook rule but the CRD's x-kubernetes-validations
		// (requestauthentications.security.istio.io): one of jwks, jwksUri.
		{name: "jwks and jwksUri", src: ra("issuer: i\n    jwksUri: https://example.com/jwks.json\n    jwks: '" + pub + "'"), want: "only one of jwks or jwksUri can be set"},
		// ValidateRequestAuthentication: issuers may repeat.
		{name: "duplicate issuer accepted", src: doc(sec1, "RequestAuthentication", "  jwtRules:\n  - issuer: i\n    jwks: '"+pub+"'\n  - issuer: i\n    jwksUri: https://example.com/jwks.json\n")},
		// security.ParseJwksURI: the scheme only (no host rule).
		{name: "jwksUri without host accepted", src: ra("issuer: i\n    jwksUri: 'https:///jwks'")},
		{name: "jwksUri scheme", src: ra("issuer: i\n    jwksUri: ftp://x/jwks"), want: `URI scheme "ftp" is not supported`},
		// validateJwtRule: inline jwks must parse (jwk.Parse).
		{name: "jwks not json", src: ra("issuer: i\n    jwks: 'nope'"), want: "jwks parse error"},
		{name: "jwks unknown key type", src: ra(`issuer: i` + "\n    jwks: '{\"keys\":[{\"kty\":\"XYZ\"}]}'"), want: "jwks parse error"},
		// warnPrivateJwksKeys: private material warns.
		{name: "jwks private key warns", src: ra(`issuer: i` + "\n    jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}'"),
			warn: "jwks key at index 0 contains private key material"},
		// ValidateStrictHTTPHeaderName for outputClaimToHeaders.
		{name: "claim header not strict", src: ra("issuer: i\n    outputClaimToHeaders: [{header: 'x.sub', claim: sub}]"), want: "header name x.sub is not a valid header name"},
		{name: "claim header strict accepted", src: ra("issuer: i\n    outputClaimToHeaders: [{header: x-jwt_sub, claim: sub}]")},
		// outputPayloadToHeader has no rule in Istio.
		{name: "payload header unchecked", src: ra("issuer: i\n    outputPayloadToHeader: 'x.payload'")},
	} {
		t.Run(c.name, func(t *testing.T) { checkValidation(t, c.src, c.want, c.warn) })
	}
}
