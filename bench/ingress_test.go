package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestIngressSmoke runs the HTTPS ingress part alone in smoke mode: Weft's
// gateway must come up and pass the check (the bench certificate for the
// SNI over TLS 1.3, TLS 1.2 refused) and both modes must serve requests;
// nginx and HAProxy must too when installed.
func TestIngressSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark harness (about 15 s)")
	}
	rep, md, stderr := smokeReport(t, "-parts", "ingress-tls")
	if !bytes.Contains(md, []byte("## HTTPS ingress")) {
		t.Error("markdown lacks the HTTPS ingress section")
	}
	want := []string{"weft-gateway-tls"}
	for name, bin := range map[string]string{"nginx-ingress-tls": nginxBin, "haproxy-ingress-tls": haproxyBin} {
		if _, err := os.Stat(bin); err == nil {
			want = append(want, name)
		}
	}
	for _, name := range want {
		var info *topoInfo
		for i := range rep.IngressTopos {
			if rep.IngressTopos[i].Name == name {
				info = &rep.IngressTopos[i]
			}
		}
		if info == nil || !info.Available || !strings.Contains(info.Verified, "TLS 1.2 refused") {
			t.Errorf("%s: not available or not checked: %+v\n%s", name, info, tail(stderr))
			continue
		}
		modes := map[string]bool{}
		for _, c := range rep.Ingress {
			if c.Topology == name && c.Skipped == "" && c.OK > 0 {
				modes[c.Mode] = true
			}
		}
		if !modes["keep-alive"] || !modes["new-connection"] {
			t.Errorf("%s: cells with successful requests per mode: %v", name, modes)
		}
	}
}
