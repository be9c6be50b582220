package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/kubetest"
)

func TestTokenReviewAuthenticator(t *testing.T) {
	env := kubetest.Shared(t)
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	token := func(sa, aud string) string {
		t.Helper()
		if _, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
			if _, err := env.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		exp := int64(600)
		tr, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{
			Spec: authv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: &exp},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	a := &kube.TokenReviewer{Client: env.Client}
	auth := func(tok string) (string, error) {
		id, err := a.Authenticate(ctx, ca.Credential{BearerToken: tok})
		return id.String(), err
	}

	if id, err := auth(token("reviews", "istio-ca")); err != nil || id != "spiffe://cluster.local/ns/"+ns+"/sa/reviews" {
		t.Fatalf("istio-ca token: %q, %v", id, err)
	}
	if id, err := auth(token("ratings", "istio-ca")); err != nil || id != "spiffe://cluster.local/ns/"+ns+"/sa/ratings" {
		t.Fatalf("another account's token: %q, %v", id, err)
	}
	if id, err := auth(token("reviews", "some-other-service")); err == nil {
		t.Fatalf("wrong-audience token accepted as %s", id)
	}
	if id, err := auth(forgeExpired(t, env, token("reviews", "istio-ca"))); err == nil {
		t.Fatalf("expired token accepted as %s", id)
	} else if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("forged token refused for another reason than expiry (forging broken?): %v", err)
	}
	if id, err := auth("not-a-token"); err == nil {
		t.Fatalf("garbage accepted as %s", id)
	}
	if _, err := auth(""); err != ca.ErrNoCredential {
		t.Fatalf("no token: %v", err)
	}
	// The trust domain is the mesh's, not the caller's.
	a.TrustDomain = func() string { return "example.org" }
	if id, err := auth(token("reviews", "istio-ca")); err != nil || !strings.HasPrefix(id, "spiffe://example.org/") {
		t.Fatalf("trust domain: %q, %v", id, err)
	}
}

// forgeExpired re-signs a real token's claims, moved an hour into the
// past, with the API server's own signing key: a well-formed, correctly
// signed, expired token.
func forgeExpired(t *testing.T, env *kubetest.Env, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour).Unix()
	claims["iat"], claims["nbf"], claims["exp"] = past, past, past+600
	body, _ := json.Marshal(claims)
	signing := parts[0] + "." + base64.RawURLEncoding.EncodeToString(body)
	keyPEM, err := os.ReadFile(env.SASigningKey)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, k.(*ecdsa.PrivateKey), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}
