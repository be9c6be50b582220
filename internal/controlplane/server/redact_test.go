package server

import (
	"strings"
	"testing"
)

func TestScrubPEM(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a -----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY----- b", "a <redacted private key> b"},
		{`{"k":"-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----"}`, `{"k":"<redacted private key>"}`},
		{"-----BEGIN RSA PRIVATE KEY-----x-----END RSA PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----c-----END CERTIFICATE-----", "<redacted private key>\n-----BEGIN CERTIFICATE-----c-----END CERTIFICATE-----"},
		{"no key here", "no key here"},
	} {
		if got := string(ScrubPEM([]byte(tc.in))); got != tc.want {
			t.Errorf("ScrubPEM(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactSecretYAML(t *testing.T) {
	in := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s # secret: c2VjcmV0\ntype: Opaque\ndata:\n  a: c2VjcmV0\nstringData:\n  b: hunter2\n"
	got := string(RedactSecretYAML([]byte(in)))
	for _, bad := range []string{"c2VjcmV0", "hunter2"} {
		if strings.Contains(got, bad) {
			t.Errorf("redacted YAML shows %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{"name: s", "a: '<redacted: 8 bytes>'", "b: '<redacted: 7 bytes>'"} {
		if !strings.Contains(got, want) {
			t.Errorf("redacted YAML lacks %q:\n%s", want, got)
		}
	}
	if got := string(RedactSecretYAML([]byte("data: [unclosed"))); strings.Contains(got, "unclosed") {
		t.Errorf("unparsable Secret shown: %q", got)
	}
}
