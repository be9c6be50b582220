package authz

import (
	"net/url"
	"path"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// FuzzAdminBypass: under MERGE_SLASHES, any request whose path, once
// decoded and cleaned (what the upstream ends up serving), is /admin or
// under /admin/ must be denied by a DENY on ["/admin", "/admin/*"] —
// whatever encoding, dot segments or slashes the client used.
func FuzzAdminBypass(f *testing.F) {
	for _, s := range []string{"/admin", "//admin", "/./admin", "/a/../admin", "/%2Fadmin", "/%61dmin/x", "/admin%2F..%2Fadmin", "/x/..%2F..%2Fadmin/", "/ad%6din?x"} {
		f.Add(s)
	}
	mesh := &meshv1alpha1.MeshConfig{RootNamespace: "istio-system",
		PathNormalization: &meshv1alpha1.MeshConfig_ProxyPathNormalization{Normalization: meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES}}
	m := sidecar(f, mesh, policy(f, "deny-admin", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]}`))
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/") || len(target) > 200 {
			return
		}
		for _, c := range []byte(target) {
			if c <= ' ' || c >= 0x7f || c == '#' {
				return // not a valid request target
			}
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		clean := path.Clean(u.Path)
		mustDeny := clean == "/admin" || strings.HasPrefix(clean, "/admin/")
		code, body := do(t, m, call{target: target})
		if code == 400 {
			return // refused by the HTTP parser: nothing reaches the app
		}
		if mustDeny && code != 403 {
			t.Fatalf("%q (served as %q) got %d %q: bypass", target, clean, code, body)
		}
	})
}
