package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtls"
)

// Revoking an identity voids the tokens and certificates issued to it until
// then, for that identity only; credentials issued afterwards work.
func TestRevokeIdentity(t *testing.T) {
	state := t.TempDir()
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c, err := New(Options{StateDir: state, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tk := NewTokens([]byte("0123456789abcdef0123456789abcdef"), clock)
	rev := NewRevocations(state)
	tokAuth := TokenAuthenticator{Tokens: tk, Revoked: rev}
	certAuth := CertAuthenticator{Revoked: rev}
	ctx := context.Background()

	reviews := meshtls.Identity{Namespace: "bookinfo", ServiceAccount: "reviews"}
	ratings := meshtls.Identity{Namespace: "bookinfo", ServiceAccount: "ratings"}
	oldTok, _ := tk.Create(reviews.Namespace, reviews.ServiceAccount, time.Hour)
	otherTok, _ := tk.Create(ratings.Namespace, ratings.ServiceAccount, time.Hour)
	oldCert := certCred(t, c, reviews)
	otherCert := certCred(t, c, ratings)
	for _, cred := range []Credential{{BearerToken: oldTok}, oldCert} {
		if _, err := Authenticate(ctx, cred, []Authenticator{certAuth, tokAuth}); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}

	now = now.Add(10 * time.Minute)
	from, err := rev.Revoke(reviews.Namespace, reviews.ServiceAccount, now)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(state, revokedFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("revocation list: %v %v", fi, err)
	}
	for name, cred := range map[string]Credential{"token": {BearerToken: oldTok}, "certificate": oldCert} {
		if _, err := Authenticate(ctx, cred, []Authenticator{certAuth, tokAuth}); !errors.Is(err, ErrRevoked) {
			t.Errorf("revoked %s: err %v, want ErrRevoked", name, err)
		}
	}
	for name, cred := range map[string]Credential{"token": {BearerToken: otherTok}, "certificate": otherCert} {
		if id, err := Authenticate(ctx, cred, []Authenticator{certAuth, tokAuth}); err != nil || id.ServiceAccount != "ratings" {
			t.Errorf("another identity's %s: %v %v", name, id, err)
		}
	}

	// A token minted (and a certificate signed) from the revocation's next
	// second on admits the workload again.
	now = from
	newTok, _ := tk.Create(reviews.Namespace, reviews.ServiceAccount, time.Hour)
	for name, cred := range map[string]Credential{"token": {BearerToken: newTok}, "certificate": certCred(t, c, reviews)} {
		if _, err := Authenticate(ctx, cred, []Authenticator{certAuth, tokAuth}); err != nil {
			t.Errorf("%s issued after the revocation: %v", name, err)
		}
	}

	// A second revocation keeps the first; a corrupt list fails closed.
	if _, err := rev.Revoke("other", "sa", now); err != nil {
		t.Fatal(err)
	}
	if _, err := tokAuth.Authenticate(ctx, Credential{BearerToken: oldTok}); !errors.Is(err, ErrRevoked) {
		t.Errorf("first revocation lost: %v", err)
	}
	if err := os.WriteFile(filepath.Join(state, revokedFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tokAuth.Authenticate(ctx, Credential{BearerToken: otherTok}); err == nil {
		t.Error("an unreadable revocation list let a token through")
	}
}

// certCred is a verified client-certificate credential for id, signed by c
// at c's clock.
func certCred(t *testing.T, c *CA, id meshtls.Identity) Credential {
	t.Helper()
	csr, _ := newCSR(t, "")
	s, err := c.SignCSR(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return Credential{TLS: &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{s.Cert}}}}
}
