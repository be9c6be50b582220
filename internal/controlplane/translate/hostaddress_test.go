package translate

import "testing"

// ServiceEntry addresses are often single-host CIDRs (Istio's egress-proxy
// task writes $PROXY_IP/32); the explicit proxy's CONNECT to that IP must
// find the service, so the domain is the bare IP.
func TestHostAddress(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3":        "10.1.2.3",
		"10.1.2.3/32":     "10.1.2.3",
		"10.1.0.0/16":     "",
		"2001:db8::1/128": "2001:db8::1",
		"2001:db8::/64":   "",
		"not an address":  "",
		"":                "",
	} {
		if got := hostAddress(in); got != want {
			t.Errorf("hostAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
