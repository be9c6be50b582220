package xds

import (
	"sync"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// generation is one snapshot as served: the translation cache that shares
// proxy-independent resources between proxies, and the content hash of
// each shared resource, computed once instead of once per proxy.
type generation struct {
	snap  *model.Snapshot
	fn    func(*model.Snapshot, *model.Proxy) *translate.Output // Options.Translate
	cache *translate.Cache                                      // nil when fn is set
	sums  sync.Map                                              // shared resource → *resourceSum
}

// resourceSum is a resource's content hash and its short form, the
// per-resource version delta xDS sends.
type resourceSum struct {
	sum     [32]byte
	version string
	wire    *encoded
}

func newGeneration(snap *model.Snapshot, fn func(*model.Snapshot, *model.Proxy) *translate.Output) *generation {
	g := &generation{snap: snap, fn: fn}
	if fn == nil {
		g.cache = translate.NewCache(snap)
	}
	return g
}

func (g *generation) translate(p *model.Proxy) *translate.Output {
	if g.fn != nil {
		return g.fn(g.snap, p)
	}
	return g.cache.Build(p)
}

// check runs the consistency check, once per shared resource.
func (g *generation) check(out *translate.Output) error {
	if g.cache != nil {
		return g.cache.Check(out)
	}
	return check(out)
}

// shared reports whether r's hash may be kept: it is shared between
// proxies for the life of the generation.
func (g *generation) shared(r any) bool {
	return g != nil && g.cache != nil && g.cache.Shared(r)
}
