package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/meshtls"
)

// CAAudience is the audience of the projected service-account token a
// proxy presents to the CA, as Istio's.
const CAAudience = "istio-ca"

// TokenReviewer authenticates Kubernetes service-account tokens with the
// TokenReview API: the API server checks signature, expiry, audience and
// that the bound pod and service account still exist; the identity is the
// service account the server names, never anything the caller claims.
type TokenReviewer struct {
	Client kubernetes.Interface
	// Audiences the token must carry one of (default istio-ca).
	Audiences []string
	// TrustDomain returns the mesh's trust domain ("" = cluster.local).
	TrustDomain func() string
}

var _ ca.Authenticator = (*TokenReviewer)(nil)

// Authenticate implements ca.Authenticator.
func (a *TokenReviewer) Authenticate(ctx context.Context, cred ca.Credential) (meshtls.Identity, error) {
	if cred.BearerToken == "" {
		return meshtls.Identity{}, ca.ErrNoCredential
	}
	auds := a.Audiences
	if len(auds) == 0 {
		auds = []string{CAAudience}
	}
	tr, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: cred.BearerToken, Audiences: auds},
	}, metav1.CreateOptions{})
	if err != nil {
		return meshtls.Identity{}, fmt.Errorf("token review: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		msg := st.Error
		if msg == "" {
			msg = "not authenticated"
		}
		return meshtls.Identity{}, fmt.Errorf("token review: %s", msg)
	}
	// The server answers with the audiences the token is valid for among
	// those asked; none means it was issued for someone else.
	if !slices.ContainsFunc(st.Audiences, func(s string) bool { return slices.Contains(auds, s) }) {
		return meshtls.Identity{}, errors.New("token review: token not issued for the CA's audience")
	}
	ns, sa, ok := serviceAccountOf(st.User.Username)
	if !ok {
		return meshtls.Identity{}, fmt.Errorf("token review: %q is not a service account", st.User.Username)
	}
	td := meshtls.DefaultTrustDomain
	if a.TrustDomain != nil {
		if t := a.TrustDomain(); t != "" {
			td = t
		}
	}
	return meshtls.Identity{TrustDomain: td, Namespace: ns, ServiceAccount: sa}, nil
}

// serviceAccountOf parses "system:serviceaccount:<ns>:<name>".
func serviceAccountOf(user string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", false
	}
	return ns, sa, true
}
