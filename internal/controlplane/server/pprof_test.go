package server_test

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/controlplane/server"
)

// TestPprofNeedsToken: Go profiles are served to the admin token holder
// only, in pprof's format (gzipped protobuf).
func TestPprofNeedsToken(t *testing.T) {
	s, _ := startWith(t, map[string]string{"bookinfo.yaml": bookinfo}, server.Options{TokenDir: "-"})
	auth := map[string]string{"Authorization": "Bearer " + s.AdminToken()}
	for _, c := range []struct {
		name string
		c    call
		code int
	}{
		{"heap without a token", call{"GET", "/debug/pprof/heap", "", nil}, 401},
		{"CPU without a token", call{"GET", "/debug/pprof/profile?seconds=1", "", nil}, 401},
		{"heap with a wrong token", call{"GET", "/debug/pprof/heap", "", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}}, 401},
		{"heap", call{"GET", "/debug/pprof/heap", "", auth}, 200},
		{"allocs", call{"GET", "/debug/pprof/allocs", "", auth}, 200},
		{"CPU, 1 s", call{"GET", "/debug/pprof/profile?seconds=1", "", auth}, 200},
		{"CPU, bad duration", call{"GET", "/debug/pprof/profile?seconds=0", "", auth}, 400},
		{"unknown profile", call{"GET", "/debug/pprof/secrets", "", auth}, 404},
	} {
		code, body := do(t, s, c.c)
		if code != c.code {
			t.Errorf("%s: %d %q, want %d", c.name, code, body, c.code)
			continue
		}
		if code == 200 && !strings.HasPrefix(body, "\x1f\x8b") {
			t.Errorf("%s: body is not a gzipped profile: %q", c.name, body[:min(len(body), 40)])
		}
	}
}
