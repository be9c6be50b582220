package rbac

import (
	"fmt"
	"net/http/httptest"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

type sink struct{}

func (sink) Serve(s *filter.Stream) error { return nil }

// istioPolicy is the shape Istio emits for "from principals P, to methods
// GET on paths /api/<i>/*, when header x-version".
func istioPolicy(i int) *rbacv3.Policy {
	and := func(ps ...*rbacv3.Permission) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
	}
	or := func(ps ...*rbacv3.Permission) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
	}
	idAnd := func(ps ...*rbacv3.Principal) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
	}
	idOr := func(ps ...*rbacv3.Principal) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
	}
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{and(or(permHeader(":method", exact("GET"))), or(permPath(prefixM(fmt.Sprintf("/api/%d/", i)))))},
		Principals: []*rbacv3.Principal{idAnd(
			idOr(idAuth(exact(fmt.Sprintf("spiffe://cluster.local/ns/ns%d/sa/client", i)))),
			idOr(&rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: idAuth(regexM(".*/ns/blocked/.*"))}}),
			idOr(idHeader("x-version", prefixM("v"))),
		)},
	}
}

// BenchmarkRBAC: one request through the HTTP filter with an ALLOW engine
// of n policies; the request matches the last policy (every policy is
// evaluated), over a verified mTLS peer.
func BenchmarkRBAC(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			rules := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
			for i := 0; i < n; i++ {
				rules.Policies[fmt.Sprintf("ns[default]-policy[p%03d]-rule[0]", i)] = istioPolicy(i)
			}
			f, err := NewHTTP(&rbachttpv3.RBAC{Rules: rules}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			last := n - 1
			in := req{path: fmt.Sprintf("/api/%d/items", last), hdr: map[string]string{"X-Version": "v2"},
				spiffe: fmt.Sprintf("spiffe://cluster.local/ns/ns%d/sa/client", last)}.input(b)
			r := httptest.NewRequest("GET", "http://httpbin"+in.Path, nil)
			r.Header = in.Req.Header
			s := &filter.Stream{W: httptest.NewRecorder(), Req: r, Conn: in.Conn, Info: &filter.Info{ClientIP: "10.0.0.1"}}
			chain := []filter.Filter{f, sink{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Start(chain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var _ = matcherv3.StringMatcher{}
