package xds

import (
	"strings"
	"sync"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

// generation is one snapshot as served: the translation cache that shares
// proxy-independent resources between proxies, and the content hash of
// each shared resource, computed once instead of once per proxy.
type generation struct {
	snap  *model.Snapshot
	fn    func(*model.Snapshot, *model.Proxy) *translate.Output // Options.Translate
	cache *translate.Cache                                      // nil when fn is set
	sums  sync.Map                                              // shared resource → *resourceSum
	parts sync.Map                                              // shared *translate.Output → *partSums
	// checked holds the check result per distinct output (its type versions).
	checked sync.Map

	svcOnce sync.Once
	svcs    *registry.ServiceIndex
}

// services is registry.ServicesFor(g.snap, m), from an index built once.
func (g *generation) services(m *node.Meta) []*model.Service {
	g.svcOnce.Do(func() { g.svcs = registry.IndexServices(g.snap) })
	return g.svcs.For(m)
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

// check runs the consistency check. Outputs with the same type versions
// have the same content, so each distinct output is checked once (most
// sidecars of a namespace get the same one); within a check, shared
// parts are indexed once (translate.Cache.Check).
func (g *generation) check(out *translate.Output, versions map[string]string) error {
	if g.cache == nil {
		return check(out)
	}
	var k strings.Builder
	for _, t := range Types {
		k.WriteString(versions[t])
		k.WriteByte('/')
	}
	if v, ok := g.checked.Load(k.String()); ok {
		return v.(checkResult).err
	}
	err := g.cache.Check(out)
	g.checked.Store(k.String(), checkResult{err})
	return err
}

type checkResult struct{ err error }

// shared reports whether r's hash may be kept: it is shared between
// proxies for the life of the generation.
func (g *generation) shared(r any) bool {
	return g != nil && g.cache != nil && g.cache.Shared(r)
}
