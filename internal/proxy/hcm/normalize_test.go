package hcm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/downstream"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		dots     bool
		slashes  bool
	}{
		{"/a/./b", "/a/b", true, false},
		{"/a/../b", "/b", true, false},
		{"/a/b/..", "/a/", true, false},
		{"/../../x", "/x", true, false},
		{"/a//b", "/a//b", true, false},
		{"/a//b///c", "/a/b/c", false, true},
		{"/a/./b//c/../d", "/a/b/d", true, true},
		{"/plain", "/plain", true, true},
	} {
		if got := normalize(tc.in, tc.dots, tc.slashes); got != tc.want {
			t.Errorf("normalize(%q, %v, %v) = %q, want %q", tc.in, tc.dots, tc.slashes, got, tc.want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add("/a/../b//c/./d")
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") {
			return
		}
		got := normalize(p, true, true)
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "/../") || strings.Contains(got, "/./") {
			t.Fatalf("normalize(%q) = %q", p, got)
		}
	})
}

func TestRequestID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := requestID()
		if len(id) != 36 || id[8] != '-' || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestClientIP(t *testing.T) {
	peer := &conn{info: &downstream.Info{Remote: netip.MustParseAddrPort("192.0.2.5:1234")}}
	const xff = "203.0.113.128, 203.0.113.10, 203.0.113.1"
	for _, tc := range []struct {
		useRemote bool
		hops      uint32
		xff       string
		want      string
	}{
		// Envoy's x-forwarded-for examples (XFF as seen after the
		// connection manager appended the peer when use_remote_address).
		{true, 0, xff + ", 192.0.2.5", "192.0.2.5"},
		{true, 1, xff + ", 192.0.2.5", "203.0.113.1"},
		{true, 2, xff + ", 192.0.2.5", "203.0.113.10"},
		{false, 0, xff, "203.0.113.1"},
		{false, 1, xff, "203.0.113.10"},
		{false, 0, "", "192.0.2.5"},
		{false, 5, xff, "192.0.2.5"},
		{false, 0, "garbage", "192.0.2.5"},
	} {
		m := &Manager{useRemote: tc.useRemote, xffHops: tc.hops}
		if got := m.clientIP(tc.xff, peer); got != tc.want {
			t.Errorf("%+v: got %s", tc, got)
		}
	}
}
