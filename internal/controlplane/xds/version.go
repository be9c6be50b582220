package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// typeSet is one proxy's output prepared for the cache: resources by type,
// a content hash per type (unchanged content keeps its version, so it is
// not re-sent) and per resource (delta xDS sends only changed resources;
// precomputing it spares the cache a second encoding).
type typeSet struct {
	items      map[string][]types.Resource
	sums       map[string][][32]byte // per item, for interning
	versions   map[string]string
	versionMap map[string]map[string]string
}

const (
	clusterType  = resource.ClusterType
	endpointType = resource.EndpointType
	listenerType = resource.ListenerType
	routeType    = resource.RouteType
	secretType   = resource.SecretType
)

func versions(out *translate.Output) (*typeSet, error) {
	ts := &typeSet{items: map[string][]types.Resource{}, sums: map[string][][32]byte{}, versions: map[string]string{}, versionMap: map[string]map[string]string{}}
	for _, r := range out.Clusters {
		ts.items[clusterType] = append(ts.items[clusterType], r)
	}
	for _, r := range out.Endpoints {
		ts.items[endpointType] = append(ts.items[endpointType], r)
	}
	for _, r := range out.Listeners {
		ts.items[listenerType] = append(ts.items[listenerType], r)
	}
	for _, r := range out.Routes {
		ts.items[routeType] = append(ts.items[routeType], r)
	}
	for _, r := range out.Secrets {
		ts.items[secretType] = append(ts.items[secretType], r)
	}
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for _, t := range Types {
		vm := make(map[string]string, len(ts.items[t]))
		th := sha256.New()
		for _, r := range ts.items[t] {
			var err error
			buf, err = opts.MarshalAppend(buf[:0], r)
			if err != nil {
				return nil, fmt.Errorf("encoding %s: %w", ShortType(t), err)
			}
			sum := sha256.Sum256(buf)
			ts.sums[t] = append(ts.sums[t], sum)
			name := cachev3.GetResourceName(r)
			vm[name] = hex.EncodeToString(sum[:8])
			fmt.Fprintf(th, "%s\x00%x\x00", name, sum)
		}
		ts.versionMap[t] = vm
		ts.versions[t] = hex.EncodeToString(th.Sum(nil))[:12]
	}
	return ts, nil
}

// snapshot builds the cache snapshot of a typeSet.
func (ts *typeSet) snapshot() *cachev3.Snapshot {
	cs := &cachev3.Snapshot{VersionMap: map[string]map[string]string{}}
	for _, t := range Types {
		cs.Resources[cachev3.GetResponseType(t)] = cachev3.NewResources(ts.versions[t], ts.items[t])
		cs.VersionMap[t] = ts.versionMap[t]
	}
	return cs
}
