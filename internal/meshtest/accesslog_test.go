package meshtest

import (
	"slices"
	"testing"
)

func TestAccessLogFields(t *testing.T) {
	line := `[2026-11-21T05:01:02.345Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 7 6 "-" "curl/8.0" "req-1" "httpbin:8000" "127.0.11.9:8080" outbound|8000||httpbin.default.svc.cluster.local 127.0.10.7:40100 127.0.10.7:15080 127.0.11.7:40000 - default` + "\n"
	f := AccessLogFields(line)
	if len(f) != LogFieldCount {
		t.Fatalf("%d fields, want %d: %q", len(f), LogFieldCount, f)
	}
	for i, want := range map[int]string{LogTime: "2026-11-21T05:01:02.345Z", LogRequestLine: "GET /status/418 HTTP/1.1",
		LogCode: "418", LogFailure: "-", LogUserAgent: "curl/8.0", LogCluster: "outbound|8000||httpbin.default.svc.cluster.local", LogRoute: "default"} {
		if f[i] != want {
			t.Errorf("field %d = %q, want %q", i, f[i], want)
		}
	}
	if got := AccessLogFields(`[2026 "GET /unterminated`); !slices.Equal(got, []string{`[2026 "GET /unterminated`}) {
		t.Errorf("unterminated bracket: %q", got)
	}
	if got := AccessLogFields(`x "GET /a`); !slices.Equal(got, []string{"x", `"GET /a`}) {
		t.Errorf("unterminated quote: %q", got)
	}
}
