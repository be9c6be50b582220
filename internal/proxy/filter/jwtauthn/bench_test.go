package jwtauthn

import (
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

type sink struct{}

func (sink) Serve(s *filter.Stream) error { return nil }

// BenchmarkVerify measures one request through the filter with a valid
// token and cached (inline, pre-parsed) keys.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			k := testKeys(b)[alg]
			f, err := New(istioConfig(jwks(b, k), nil), Options{Now: func() time.Time { return t0 }})
			if err != nil {
				b.Fatal(err)
			}
			tok := "Bearer " + sign(b, k, claims(nil), true)
			r := httptest.NewRequest("GET", "http://h/p", nil)
			s := &filter.Stream{W: httptest.NewRecorder(), Info: &filter.Info{}}
			chain := []filter.Filter{f, sink{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Header["Authorization"] = []string{tok}
				s.Req = r
				s.Meta.Set(MetadataNamespace, nil)
				if err := s.Start(chain); err != nil {
					b.Fatal(err)
				}
				if s.Meta.Get(MetadataNamespace) == nil {
					b.Fatal("not verified")
				}
			}
		})
	}
	b.Run("no-token", func(b *testing.B) {
		k := testKeys(b)[jose.ES256]
		f, _ := New(istioConfig(jwks(b, k), nil), Options{Now: func() time.Time { return t0 }})
		r := httptest.NewRequest("GET", "http://h/p", nil)
		s := &filter.Stream{W: httptest.NewRecorder(), Req: r, Info: &filter.Info{}}
		chain := []filter.Filter{f, sink{}}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := s.Start(chain); err != nil {
				b.Fatal(err)
			}
		}
	})
}
