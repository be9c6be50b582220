package translate

import (
	"strings"
	"testing"
)

func describeCase(t *testing.T, dir, proxy string) *MTLSDescription {
	t.Helper()
	snap, gps, proxies := loadCase(t, dir)
	for i, g := range gps {
		if g.Name == proxy {
			return DescribeMTLS(snap, proxies[i])
		}
	}
	t.Fatalf("no proxy %s in %s", proxy, dir)
	return nil
}

func TestDescribePeerAuthentication(t *testing.T) {
	d := describeCase(t, "testdata/peerauthn", "httpbin-foo")
	if d.Mode != "PERMISSIVE" || d.ModeFrom != "namespace" || d.Identity != "spiffe://cluster.local/ns/foo/sa/default" {
		t.Errorf("mode %s from %s, identity %s", d.Mode, d.ModeFrom, d.Identity)
	}
	want := map[uint32]string{7000: "PERMISSIVE", 8000: "STRICT", 9000: "DISABLE", 9001: "PERMISSIVE"}
	for _, p := range d.Ports {
		if want[p.Port] != p.Mode {
			t.Errorf("port %d: %s, want %s", p.Port, p.Mode, want[p.Port])
		}
		if p.Port == 8000 && !strings.Contains(p.Reason, "portLevelMtls of workload policy foo/httpbin") {
			t.Errorf("port 8000 reason %q", p.Reason)
		}
		if p.Port == 7000 && p.Reason != "namespace policy foo/default" {
			t.Errorf("port 7000 reason %q", p.Reason)
		}
		delete(want, p.Port)
	}
	if len(want) != 0 {
		t.Errorf("ports missing: %v", want)
	}
	var scopes []string
	for _, r := range d.Policies {
		scopes = append(scopes, r.Scope+"="+r.Name+":"+r.Mode)
	}
	if got := strings.Join(scopes, " "); got != "mesh=istio-system/default:STRICT namespace=foo/default:PERMISSIVE workload=foo/httpbin:UNSET" {
		t.Errorf("policies %s", got)
	}

	d = describeCase(t, "testdata/peerauthn", "curl-default-nocert")
	if len(d.Warnings) == 0 || !strings.Contains(d.Warnings[0], "STRICT but the proxy holds no workload certificate") {
		t.Errorf("no warning for STRICT without a certificate: %v", d.Warnings)
	}
}

func TestDescribeClients(t *testing.T) {
	d := describeCase(t, "testdata/mtls-auto", "ratings-v2")
	if len(d.Services) != 1 {
		t.Fatalf("services %+v", d.Services)
	}
	s := d.Services[0]
	if s.Host != "ratings.default.svc.cluster.local" || s.ClientTLS != "DISABLE" || !strings.Contains(s.Reason, "disables mutual TLS") {
		t.Errorf("ratings-v2 clients: %+v", s)
	}
	d = describeCase(t, "testdata/mtls-auto", "productpage")
	if s := d.Services[0]; s.ClientTLS != "ISTIO_MUTUAL" || !strings.Contains(s.Reason, "auto mTLS") {
		t.Errorf("productpage clients: %+v", s)
	}
}
