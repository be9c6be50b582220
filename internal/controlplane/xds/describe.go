package xds

import (
	"fmt"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/node"
)

// DescribeMTLS explains the mutual TLS of a connected proxy's workload
// against the current snapshot (weft x describe).
func (s *Server) DescribeMTLS(id string) (*translate.MTLSDescription, error) {
	snap := s.Snapshot()
	s.mu.Lock()
	p := s.proxies[id]
	var meta *node.Meta
	if p != nil {
		meta = p.meta // replaced under s.mu on a lifecycle change
	}
	s.mu.Unlock()
	if p == nil || snap == nil {
		return nil, fmt.Errorf("proxy %q is not connected", id)
	}
	svcs := registry.ServicesFor(snap, meta)
	proxy := &model.Proxy{Meta: registry.WithLocality(meta, svcs), ID: p.id, Services: svcs}
	if id, err := meshtls.ParseSPIFFE(p.identity); p.identity != "" && err == nil {
		proxy.Identity = &id // credentials follow the verified identity
	}
	d := translate.DescribeMTLS(snap, proxy)
	d.Warnings = append(d.Warnings, translate.CredentialProblems(snap, proxy)...)
	return d, nil
}
