package meshtls

import (
	"crypto/x509"
	"net/url"
	"testing"
)

func TestParseSPIFFE(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Identity
		wantErr bool
	}{
		{in: "spiffe://cluster.local/ns/default/sa/sleep", want: Identity{"cluster.local", "default", "sleep"}},
		{in: "spiffe://example.org/ns/foo/sa/bar", want: Identity{"example.org", "foo", "bar"}},
		{in: "https://cluster.local/ns/default/sa/sleep", wantErr: true},
		{in: "spiffe://cluster.local/ns/default", wantErr: true},
		{in: "spiffe://cluster.local/ns//sa/x", wantErr: true},
		{in: "spiffe://cluster.local/ns/a/sa/b/extra", wantErr: true},
		{in: "spiffe:///ns/a/sa/b", wantErr: true},
		{in: "spiffe://u@cluster.local/ns/a/sa/b", wantErr: true},
		{in: "spiffe://cluster.local/ns/a/sa/b?x=1", wantErr: true},
	} {
		got, err := ParseSPIFFE(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseSPIFFE(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("round trip %q -> %q", tc.in, got.String())
		}
	}
}

func TestPrincipal(t *testing.T) {
	id := Identity{"cluster.local", "default", "sleep"}
	if got := id.Principal(); got != "cluster.local/ns/default/sa/sleep" {
		t.Fatalf("Principal = %q", got)
	}
	back, err := ParsePrincipal(id.Principal())
	if err != nil || back != id {
		t.Fatalf("ParsePrincipal = %v, %v", back, err)
	}
	if _, err := ParsePrincipal("cluster.local"); err == nil {
		t.Fatal("ParsePrincipal accepted a bare trust domain")
	}
}

func TestCertIdentity(t *testing.T) {
	u, _ := url.Parse("spiffe://cluster.local/ns/a/sa/b")
	other, _ := url.Parse("https://example.com")
	id, err := CertIdentity(&x509.Certificate{URIs: []*url.URL{other, u}})
	if err != nil || id != (Identity{"cluster.local", "a", "b"}) {
		t.Fatalf("CertIdentity = %v, %v", id, err)
	}
	if _, err := CertIdentity(&x509.Certificate{}); err != ErrNoPeerIdentity {
		t.Fatalf("no URI: err = %v", err)
	}
	if _, err := PeerIdentity(nil); err != ErrNoPeerIdentity {
		t.Fatalf("nil state: err = %v", err)
	}
}
