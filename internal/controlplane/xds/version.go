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
// precomputing it spares the cache a second encoding). The per-resource
// version maps are filled by interner.share, only for lists no other
// proxy published already.
type typeSet struct {
	items      map[string][]types.Resource
	wire       map[string][]types.Resource // items as *encoded, for the cache
	sums       map[string][][32]byte       // per item, for interning
	hashes     map[string][]string         // per item: its delta version
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

// versions hashes an output; g (may be nil) keeps the hashes of shared
// resources, so each is encoded and hashed once per generation, and keeps
// every encoding for the wire.
func (g *generation) versions(out *translate.Output) (*typeSet, error) {
	ts := &typeSet{items: map[string][]types.Resource{}, wire: map[string][]types.Resource{}, sums: map[string][][32]byte{}, hashes: map[string][]string{},
		versions: map[string]string{}, versionMap: map[string]map[string]string{}}
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
	sep := []byte{0}
	for _, t := range Types {
		items := ts.items[t]
		sums := make([][32]byte, 0, len(items))
		hashes := make([]string, 0, len(items))
		wire := make([]types.Resource, 0, len(items))
		th := sha256.New()
		for _, r := range items {
			var rs *resourceSum
			if g != nil {
				if v, ok := g.sums.Load(r); ok {
					rs = v.(*resourceSum)
				}
			}
			if rs == nil {
				var err error
				buf, err = opts.MarshalAppend(buf[:0], r)
				if err != nil {
					return nil, fmt.Errorf("encoding %s: %w", ShortType(t), err)
				}
				rs = &resourceSum{sum: sha256.Sum256(buf)}
				rs.version = hex.EncodeToString(rs.sum[:8])
				rs.wire = &encoded{Message: r, name: cachev3.GetResourceName(r), bytes: append([]byte(nil), buf...)}
				if g.shared(r) {
					g.sums.Store(r, rs)
				}
			}
			sums = append(sums, rs.sum)
			hashes = append(hashes, rs.version)
			wire = append(wire, rs.wire)
			th.Write([]byte(rs.wire.name))
			th.Write(sep)
			th.Write(rs.sum[:])
		}
		ts.sums[t], ts.hashes[t], ts.wire[t] = sums, hashes, wire
		ts.versions[t] = hex.EncodeToString(th.Sum(nil))[:12]
	}
	return ts, nil
}

// versionMapOf builds the per-resource version map of one type.
func (ts *typeSet) versionMapOf(t string) map[string]string {
	vm := make(map[string]string, len(ts.items[t]))
	for i, r := range ts.items[t] {
		vm[cachev3.GetResourceName(r)] = ts.hashes[t][i]
	}
	return vm
}

// snapshot builds the cache snapshot of a typeSet.
func (ts *typeSet) snapshot() *cachev3.Snapshot {
	cs := &cachev3.Snapshot{VersionMap: map[string]map[string]string{}}
	for _, t := range Types {
		cs.Resources[cachev3.GetResponseType(t)] = cachev3.NewResources(ts.versions[t], ts.wire[t])
		if ts.versionMap[t] == nil {
			ts.versionMap[t] = ts.versionMapOf(t)
		}
		cs.VersionMap[t] = ts.versionMap[t]
	}
	return cs
}
