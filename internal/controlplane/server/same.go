package server

import (
	"reflect"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// sameSnapshot reports whether two snapshots would translate identically,
// so a change that does not matter (a proxy whose workload no service
// selects came or went) costs no re-translation of every proxy. Config
// objects are compared by identity: the store hands out the same objects
// until their file changes.
func sameSnapshot(a, b *model.Snapshot) bool {
	if a == nil || b == nil {
		return a == b
	}
	return proto.Equal(a.Mesh, b.Mesh) &&
		slices.Equal(a.VirtualServices, b.VirtualServices) &&
		slices.Equal(a.DestinationRules, b.DestinationRules) &&
		slices.Equal(a.Gateways, b.Gateways) &&
		slices.Equal(a.ServiceEntries, b.ServiceEntries) &&
		slices.Equal(a.Sidecars, b.Sidecars) &&
		slices.Equal(a.PeerAuthentications, b.PeerAuthentications) &&
		slices.Equal(a.RequestAuthentications, b.RequestAuthentications) &&
		slices.Equal(a.AuthorizationPolicies, b.AuthorizationPolicies) &&
		slices.Equal(a.Telemetries, b.Telemetries) &&
		reflect.DeepEqual(a.Services, b.Services) &&
		reflect.DeepEqual(a.Secrets, b.Secrets) &&
		reflect.DeepEqual(a.JWKS, b.JWKS)
}
