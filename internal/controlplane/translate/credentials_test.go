package translate

import (
	"path/filepath"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// TestCredentialProblems: a credential a gateway server or a
// DestinationRule names but the proxy cannot be served is explained, with
// the reason (missing, in another namespace, no verified identity) and
// the consequence; a proxy served everything it names hears nothing.
func TestCredentialProblems(t *testing.T) {
	snap, _, proxies := loadCase(t, filepath.Join("testdata", "secret-isolation"))
	byNS := map[string]*model.Proxy{}
	for _, p := range proxies {
		byNS[p.Meta.Namespace] = p
	}
	system, team := byNS["istio-system"], byNS["team"]
	if system == nil || team == nil {
		t.Fatal("the case's routers")
	}
	if got := CredentialProblems(snap, system); len(got) != 0 {
		t.Errorf("istio-system's router is served both credentials, yet: %q", got)
	}
	got := CredentialProblems(snap, team)
	if len(got) != 1 {
		t.Fatalf("team's router: want one problem (only-system), got %q", got)
	}
	for _, want := range []string{"Gateway default/shared server 1 (port 8443, hosts system.example.com)", `credentialName "only-system"`,
		"not found in namespace team; it exists in istio-system", "this server's TLS filter chain is not served", "other servers are unaffected"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("team's problem %q lacks %q", got[0], want)
		}
	}
	anon := *team
	anon.Identity = nil
	got = CredentialProblems(snap, &anon)
	if len(got) != 2 || !strings.Contains(got[0], "proved no identity") || !strings.Contains(got[1], "proved no identity") {
		t.Errorf("an unverified router: want both servers explained by its missing identity, got %q", got)
	}

	// A DestinationRule originating mutual TLS with a credential that
	// lives in another namespace than the proxy using it.
	snap2 := *snap
	snap2.DestinationRules = append(append([]*networkingv1.DestinationRule(nil), snap.DestinationRules...), &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Name: "to-productpage", Namespace: "default"},
		Spec: networking.DestinationRule{Host: "productpage.default.svc.cluster.local", TrafficPolicy: &networking.TrafficPolicy{
			Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_MUTUAL, CredentialName: "only-system"},
		}},
	})
	got = CredentialProblems(&snap2, team)
	found := false
	for _, m := range got {
		if strings.HasPrefix(m, "cluster outbound|9080||productpage.default.svc.cluster.local: DestinationRule tls credentialName \"only-system\"") &&
			strings.Contains(m, "it exists in istio-system") && strings.Contains(m, "(the client certificate)") {
			found = true
		}
	}
	if !found {
		t.Errorf("the DestinationRule's credential is not explained: %q", got)
	}
	if got := CredentialProblems(&snap2, system); len(got) != 1 || !strings.Contains(got[0], "holds a CA certificate") {
		t.Errorf("istio-system has only-system without a CA, which MUTUAL origination verifies with: %q", got)
	}
}
