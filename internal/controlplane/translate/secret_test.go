package translate

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/meshtls"
)

// TestCredentialsFollowVerifiedIdentity: a router's credentials come from
// the namespace it proved, never from the one its metadata claims; a
// router without a verified identity (plaintext dev port) gets none.
func TestCredentialsFollowVerifiedIdentity(t *testing.T) {
	snap, _, proxies := loadCase(t, filepath.Join("testdata", "secret-isolation"))
	var team *model.Proxy
	for _, p := range proxies {
		if p.Meta.Namespace == "team" {
			team = p
		}
	}
	if team == nil {
		t.Fatal("no team router in the case")
	}
	cn := func(s *tlsv3.Secret) string {
		pem := string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
		if pem == "" {
			return ""
		}
		c, err := parsePEMCert(pem)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	want := func(out *Output) map[string]string {
		got := map[string]string{}
		for _, s := range out.Secrets {
			got[s.GetName()] = cn(s)
		}
		return got
	}

	// Honest: verified team, claims team.
	honest := want(Build(snap, team))
	if honest["kubernetes://shared-cred"] != "Test CA" || len(honest) != 1 {
		t.Fatalf("team router's secrets: %v", honest)
	}

	// Lying metadata: claims istio-system, proved team. (The xDS server
	// refuses such a stream; the lookup must not depend on that.)
	liar := *team
	m := *team.Meta
	m.Namespace = "istio-system"
	liar.Meta = &m
	liar.Identity = &meshtls.Identity{TrustDomain: "cluster.local", Namespace: "team", ServiceAccount: team.Meta.ServiceAccount}
	got := want(Build(snap, &liar))
	for name, c := range got {
		if name == "kubernetes://only-system" || c == "example.com" {
			t.Errorf("a team router claiming istio-system got %s (CN %q)", name, c)
		}
	}

	// No verified identity: no credentials at all, and no TLS chains
	// that would wait for them.
	anon := *team
	anon.Identity = nil
	out := Build(snap, &anon)
	if len(out.Secrets) != 0 {
		t.Errorf("an unverified router got secrets: %v", want(out))
	}
	for _, l := range out.Listeners {
		for _, fc := range l.GetFilterChains() {
			if strings.HasPrefix(fc.GetName(), "https.") {
				t.Errorf("unverified router has TLS chain %s", fc.GetName())
			}
		}
	}
}

func parsePEMCert(s string) (string, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return "", errors.New("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	return c.Subject.CommonName, nil
}
