// Package meshtls holds what the control plane and the proxy share about
// workload identity and TLS: SPIFFE identities
// (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>), Istio's
// principal form of them, and reading a peer's identity from a verified TLS
// connection. It imports no control-plane, proxy or Kubernetes code, so
// both sides can use it.
package meshtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain is MeshConfig trustDomain's default, as in Istio.
const DefaultTrustDomain = "cluster.local"

// Identity is a workload's SPIFFE identity.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String is the SPIFFE URI, the URI SAN of the workload's certificate.
func (id Identity) String() string {
	return "spiffe://" + id.Principal()
}

// Principal is Istio's principal form, the SPIFFE URI without its scheme
// ("cluster.local/ns/default/sa/sleep"): what AuthorizationPolicy
// `principals`, telemetry's source_principal and Envoy's RBAC compare.
func (id Identity) Principal() string {
	return id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// IsZero reports whether id is the zero Identity.
func (id Identity) IsZero() bool { return id == Identity{} }

// ParseSPIFFE parses spiffe://<td>/ns/<ns>/sa/<sa>, the only SPIFFE path
// shape Istio issues. Other paths are an error.
func ParseSPIFFE(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("spiffe id %q: %w", s, err)
	}
	if u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return Identity{}, fmt.Errorf("spiffe id %q: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", s)
	}
	return parsePath(u.Host, u.Path, s)
}

// ParsePrincipal parses Istio's principal form "<td>/ns/<ns>/sa/<sa>".
func ParsePrincipal(p string) (Identity, error) {
	td, rest, ok := strings.Cut(p, "/")
	if !ok || td == "" {
		return Identity{}, fmt.Errorf("principal %q: want <trust-domain>/ns/<namespace>/sa/<service-account>", p)
	}
	return parsePath(td, "/"+rest, p)
}

func parsePath(td, path, orig string) (Identity, error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return Identity{}, fmt.Errorf("identity %q: want <trust-domain>/ns/<namespace>/sa/<service-account>", orig)
	}
	return Identity{TrustDomain: td, Namespace: parts[1], ServiceAccount: parts[3]}, nil
}

// ErrNoPeerIdentity: the peer presented no certificate with a SPIFFE URI.
var ErrNoPeerIdentity = errors.New("peer presented no SPIFFE identity")

// CertIdentity reads the SPIFFE identity from a certificate's URI SANs.
// Istio certificates carry exactly one spiffe:// URI.
func CertIdentity(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, ErrNoPeerIdentity
	}
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			return ParseSPIFFE(u.String())
		}
	}
	return Identity{}, ErrNoPeerIdentity
}

// PeerIdentity is the identity of the peer of a TLS connection. It trusts
// the leaf only when the handshake verified it (VerifiedChains set, or a
// custom verifier that ran during the handshake and marked it so): callers
// must only use it on connections whose tls.Config verified the peer.
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return Identity{}, ErrNoPeerIdentity
	}
	return CertIdentity(cs.PeerCertificates[0])
}
