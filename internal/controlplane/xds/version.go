package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// versions hashes each type's resources (deterministic proto encoding, in
// the output's name order) so a type whose content did not change keeps
// its version and is not re-sent.
func versions(out *translate.Output) (map[string]string, map[string][]types.Resource, error) {
	items := map[string][]types.Resource{}
	for _, r := range out.Clusters {
		items[resource.ClusterType] = append(items[resource.ClusterType], r)
	}
	for _, r := range out.Endpoints {
		items[resource.EndpointType] = append(items[resource.EndpointType], r)
	}
	for _, r := range out.Listeners {
		items[resource.ListenerType] = append(items[resource.ListenerType], r)
	}
	for _, r := range out.Routes {
		items[resource.RouteType] = append(items[resource.RouteType], r)
	}
	for _, r := range out.Secrets {
		items[resource.SecretType] = append(items[resource.SecretType], r)
	}
	vs := map[string]string{}
	opts := proto.MarshalOptions{Deterministic: true}
	for _, t := range Types {
		h := sha256.New()
		for _, r := range items[t] {
			b, err := opts.Marshal(r)
			if err != nil {
				return nil, nil, fmt.Errorf("encoding %s: %w", ShortType(t), err)
			}
			fmt.Fprintf(h, "%d:", len(b))
			h.Write(b)
		}
		vs[t] = hex.EncodeToString(h.Sum(nil))[:12]
	}
	return vs, items, nil
}
