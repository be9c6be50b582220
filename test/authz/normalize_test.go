package authz

import (
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// TestNormalization: a DENY on /admin (and /admin/*) under each MeshConfig
// pathNormalization, against the bypass attempts of Istio's "Authorization
// Policy Normalization" page. Where Weft is stricter than Envoy it says so:
// Go decodes %2F before normalization, so MERGE_SLASHES already merges an
// encoded slash that Envoy would leave for DECODE_AND_MERGE_SLASHES.
func TestNormalization(t *testing.T) {
	type N = meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType
	const (
		none   = meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE
		base   = meshv1alpha1.MeshConfig_ProxyPathNormalization_BASE
		merge  = meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES
		decode = meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES
		dflt   = meshv1alpha1.MeshConfig_ProxyPathNormalization_DEFAULT
	)
	deny := policy(t, "deny-admin", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]}`)
	for _, tc := range []struct {
		path   string
		denied map[N]bool // by normalization; missing: allowed
	}{
		{"/admin", map[N]bool{none: true, base: true, merge: true, decode: true, dflt: true}},
		{"/admin/users", map[N]bool{none: true, base: true, merge: true, decode: true, dflt: true}},
		{"/admin?x=1", map[N]bool{none: true, base: true, merge: true, decode: true, dflt: true}},
		{"/./admin", map[N]bool{base: true, merge: true, decode: true, dflt: true}},
		{"/public/../admin", map[N]bool{base: true, merge: true, decode: true, dflt: true}},
		{"/public/%2e%2e/admin", map[N]bool{base: true, merge: true, decode: true, dflt: true}},
		{"/%61dmin", map[N]bool{base: true, merge: true, decode: true, dflt: true}},
		{"//admin", map[N]bool{merge: true, decode: true}},
		{"/admin//users", map[N]bool{none: true, base: true, merge: true, decode: true, dflt: true}},
		{"///admin", map[N]bool{merge: true, decode: true}},
		{"/%2Fadmin", map[N]bool{merge: true, decode: true}},
		{"/%2fadmin", map[N]bool{merge: true, decode: true}},
		{"/admin%2Fusers", map[N]bool{base: true, merge: true, decode: true, dflt: true}},
		{"/public/..%2Fadmin", map[N]bool{base: true, merge: true, decode: true, dflt: true}},
		{"/ADMIN", nil},  // paths are case-sensitive, as in Istio
		{"/admin2", nil}, // exact, not a prefix
		{"/get", nil},
	} {
		for _, n := range []N{dflt, none, base, merge, decode} {
			mesh := &meshv1alpha1.MeshConfig{RootNamespace: "istio-system",
				PathNormalization: &meshv1alpha1.MeshConfig_ProxyPathNormalization{Normalization: n}}
			m := sidecar(t, mesh, deny)
			if got := !allowed(t, m, call{target: tc.path}); got != tc.denied[n] {
				t.Errorf("%v %s: denied %v, want %v", n, tc.path, got, tc.denied[n])
			}
		}
	}
}

// TestNormalizedPathIsForwarded: what RBAC judged is what goes upstream
// (the route sees the same path), checked through the route's prefix
// match rather than the upstream, which this harness does not run.
func TestAllowListNormalized(t *testing.T) {
	allow := policy(t, "allow-public", `{rules: [{to: [{operation: {paths: ["/public/*"]}}]}]}`)
	m := sidecar(t, nil, allow)
	for path, want := range map[string]bool{
		"/public/a":              true,
		"/public/../admin":       false, // normalized to /admin before RBAC
		"/public/%2e%2e/admin":   false,
		"/public/..%2Fadmin":     false,
		"/public/./a":            true,
		"/admin/../public/index": true,
	} {
		if got := allowed(t, m, call{target: path}); got != want {
			t.Errorf("%s: allowed %v, want %v", path, got, want)
		}
	}
}
