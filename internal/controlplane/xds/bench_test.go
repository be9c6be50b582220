package xds

import (
	"fmt"
	"testing"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

// benchSnapshot is n Kubernetes-style services with one endpoint each.
func benchSnapshot(n int) *model.Snapshot {
	snap := emptySnapshot()
	for i := range n {
		host := fmt.Sprintf("svc-%d.default.svc.cluster.local", i)
		snap.Services = append(snap.Services, &model.Service{
			Hostname: host, Name: fmt.Sprintf("svc-%d", i), Namespace: "default", ExportTo: []string{"*"},
			Ports: []*model.Port{{Name: "http", Number: 8080, Protocol: "HTTP"}},
			Endpoints: []*model.Endpoint{{Address: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1), Port: 8080, ServicePort: 8080,
				Namespace: "default", WorkloadName: fmt.Sprintf("svc-%d-vm", i), Healthy: true, TLSMode: "disabled"}},
		})
	}
	return snap
}

// BenchmarkTranslateAndHash is the per-proxy cost of one push: translate
// for a capture-mode sidecar, then hash every type.
func BenchmarkTranslateAndHash(b *testing.B) {
	snap := benchSnapshot(200)
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: "app", Namespace: "default", Capture: true}
	p := &model.Proxy{Meta: m, ID: m.ID(), Services: registry.ServicesFor(snap, m)}
	b.Run("translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			translate.Build(snap, p)
		}
	})
	out := translate.Build(snap, p)
	b.Run("hash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			versions(out)
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			check(out)
		}
	})
}
