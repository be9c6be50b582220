package xds

import (
	"context"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/node"
)

type identityKey struct{}

// WithPeerIdentity marks a stream's context with the identity its caller
// proved (client certificate or token), as the secure server's
// interceptor does. Streams whose context carries one are held to it;
// streams without one (the plaintext dev port) trust the node metadata.
func WithPeerIdentity(ctx context.Context, id meshtls.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// PeerIdentity returns the identity WithPeerIdentity attached.
func PeerIdentity(ctx context.Context) (meshtls.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(meshtls.Identity)
	return id, ok
}

func (s *Server) streamOpened(ctx context.Context, k streamKey) {
	if id, ok := PeerIdentity(ctx); ok {
		s.mu.Lock()
		s.idents[k] = id
		s.mu.Unlock()
	}
}

// bindIdentity holds node metadata to the stream's verified identity, as
// istiod does: the namespace and service account a proxy claims must be
// the ones it proved; an unclaimed service account takes the verified
// one. A mismatch refuses the stream (and is counted): config, secrets and
// auto-registration are then always those of the verified identity. It
// returns the verified SPIFFE identity ("" on the plaintext dev port).
func (s *Server) bindIdentity(k streamKey, n *corev3.Node, meta *node.Meta) (string, error) {
	s.mu.Lock()
	id, ok := s.idents[k]
	s.mu.Unlock()
	if !ok {
		return "", nil
	}
	if _, claimed := n.GetMetadata().GetFields()["SERVICE_ACCOUNT"]; !claimed {
		meta.ServiceAccount = id.ServiceAccount
	}
	if meta.Namespace != id.Namespace || meta.ServiceAccount != id.ServiceAccount {
		s.metrics.identityMismatch.Add(1)
		return "", fmt.Errorf("node %q claims namespace %q service account %q, but its credential is for %s",
			n.GetId(), meta.Namespace, meta.ServiceAccount, id.String())
	}
	return id.String(), nil
}
