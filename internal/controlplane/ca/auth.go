package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/weftmesh/weft/internal/meshtls"
)

// Credential is what a caller presented: a bearer token (join token, or in
// Kubernetes a service-account token) and/or a client certificate that the
// TLS handshake verified against the trust bundle.
type Credential struct {
	BearerToken string
	// TLS is the caller's connection state; its VerifiedChains are set only
	// when the handshake verified a client certificate.
	TLS *tls.ConnectionState
}

// Authenticator turns a credential into the caller's verified identity.
// Implementations are safe for concurrent use. An error means "not this
// kind of credential or not valid"; the first authenticator that succeeds
// wins.
type Authenticator interface {
	Authenticate(ctx context.Context, cred Credential) (meshtls.Identity, error)
}

// ErrNoCredential: the caller presented nothing an authenticator accepts.
var ErrNoCredential = errors.New("no credential")

// TokenAuthenticator accepts join tokens not revoked.
type TokenAuthenticator struct {
	Tokens  *Tokens
	Revoked *Revocations // nil: none
}

// Authenticate implements Authenticator.
func (a TokenAuthenticator) Authenticate(_ context.Context, cred Credential) (meshtls.Identity, error) {
	if cred.BearerToken == "" {
		return meshtls.Identity{}, ErrNoCredential
	}
	id, c, err := a.Tokens.verify(cred.BearerToken)
	if err != nil {
		return meshtls.Identity{}, err
	}
	if err := a.Revoked.Check(id, time.Unix(c.IssuedAt, 0)); err != nil {
		return meshtls.Identity{}, err
	}
	return id, nil
}

// CertAuthenticator accepts a verified client certificate carrying a
// SPIFFE identity of this mesh's trust domain (a proxy renewing with the
// certificate it holds).
type CertAuthenticator struct {
	TrustDomain func() string
	Revoked     *Revocations // nil: none
}

// Authenticate implements Authenticator.
func (a CertAuthenticator) Authenticate(_ context.Context, cred Credential) (meshtls.Identity, error) {
	if cred.TLS == nil || len(cred.TLS.VerifiedChains) == 0 {
		return meshtls.Identity{}, ErrNoCredential
	}
	id, err := meshtls.CertIdentity(cred.TLS.VerifiedChains[0][0])
	if err != nil {
		return meshtls.Identity{}, err
	}
	if td := a.trustDomain(); id.TrustDomain != td {
		return meshtls.Identity{}, fmt.Errorf("client certificate of trust domain %q, want %q", id.TrustDomain, td)
	}
	// The CA backdates NotBefore; the signing moment is what revocation
	// compares.
	if err := a.Revoked.Check(id, cred.TLS.VerifiedChains[0][0].NotBefore.Add(backdate)); err != nil {
		return meshtls.Identity{}, err
	}
	return id, nil
}

func (a CertAuthenticator) trustDomain() string {
	if a.TrustDomain != nil {
		if td := a.TrustDomain(); td != "" {
			return td
		}
	}
	return meshtls.DefaultTrustDomain
}

// CredentialFrom reads a gRPC caller's credential: "authorization: Bearer
// <token>" metadata (as Istio's CA clients send it) and the TLS state.
func CredentialFrom(ctx context.Context) Credential {
	var c Credential
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
				c.BearerToken = strings.TrimSpace(tok)
				break
			}
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			st := ti.State
			c.TLS = &st
		}
	}
	return c
}

// Authenticate runs authenticators in order; the first success wins. The
// error joins every failure (for logs; callers answer generically).
func Authenticate(ctx context.Context, cred Credential, auths []Authenticator) (meshtls.Identity, error) {
	var errs []error
	for _, a := range auths {
		id, err := a.Authenticate(ctx, cred)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrNoCredential) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return meshtls.Identity{}, ErrNoCredential
	}
	return meshtls.Identity{}, errors.Join(errs...)
}
