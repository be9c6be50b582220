package translate

import (
	"slices"
	"testing"
)

// Istio pilot/pkg/security/trustdomain/bundle_test.go's cases for
// ReplaceTrustDomainAliases and ExpandTrustDomainAliases.
func TestTrustBundleMigrate(t *testing.T) {
	for _, tc := range []struct {
		name string
		tb   trustBundle
		in   []string
		want []string
	}{
		{"no alias", trustBundle{"td1"}, []string{"td1/ns/foo/sa/bar"}, []string{"td1/ns/foo/sa/bar"}},
		{"alias", trustBundle{"td1", "td2"}, []string{"td1/ns/foo/sa/bar"}, []string{"td1/ns/foo/sa/bar", "td2/ns/foo/sa/bar"}},
		{"from an alias", trustBundle{"td1", "td2"}, []string{"td2/ns/foo/sa/bar"}, []string{"td1/ns/foo/sa/bar", "td2/ns/foo/sa/bar"}},
		{"cluster.local points at the local domain", trustBundle{"td1"}, []string{"cluster.local/ns/foo/sa/bar"}, []string{"td1/ns/foo/sa/bar"}},
		{"foreign domain kept", trustBundle{"td1", "td2"}, []string{"other/ns/foo/sa/bar"}, []string{"other/ns/foo/sa/bar"}},
		{"any domain kept", trustBundle{"td1", "td2"}, []string{"*/ns/foo/sa/bar"}, []string{"*/ns/foo/sa/bar"}},
		{"not spiffe form kept", trustBundle{"td1", "td2"}, []string{"ns/foo/sa/bar"}, []string{"ns/foo/sa/bar"}},
		{"suffix pattern kept once", trustBundle{"old-td", "new-td"}, []string{"*-td/ns/foo/sa/bar"}, []string{"*-td/ns/foo/sa/bar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.tb.migrate(term{key: keySrcPrincipal, values: tc.in})
			if !slices.Equal(got.values, tc.want) {
				t.Errorf("principals %v = %v, want %v", tc.in, got.values, tc.want)
			}
		})
	}
	got := trustBundle{"td1", "td2"}.migrate(term{key: keySrcTD, values: []string{"td2", "x", "td1"}})
	if want := []string{"td1", "td2", "x"}; !slices.Equal(got.values, want) {
		t.Errorf("trust domains = %v, want %v", got.values, want)
	}
	in := term{key: keySrcNamespace, values: []string{"td1"}}
	if got := (trustBundle{"td1", "td2"}).migrate(in); !slices.Equal(got.values, in.values) {
		t.Errorf("namespace term changed: %v", got.values)
	}
}
