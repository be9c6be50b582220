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
// for a capture-mode sidecar, then hash and check every type. The plain
// sub-benchmarks do it from scratch (translate.Build, as before the
// cache); "shared/*" are what each further proxy of a generation costs
// once its outbound resources are shared (translate.Cache), and
// "shared/first" what the first proxy of a new snapshot costs.
func BenchmarkTranslateAndHash(b *testing.B) {
	snap := benchSnapshot(1000)
	proxy := func(i int) *model.Proxy {
		m := &node.Meta{Type: node.Sidecar, IP: fmt.Sprintf("127.0.%d.%d", 10+i/250, i%250+1), Name: fmt.Sprintf("app-%d", i),
			Namespace: "default", Labels: map[string]string{"app": fmt.Sprintf("svc-%d", i%1000)}, Capture: true,
			Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}}
		return &model.Proxy{Meta: m, ID: m.ID(), Services: registry.ServicesFor(snap, m)}
	}
	p := proxy(0)
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
			(*generation)(nil).versions(out)
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			check(out)
		}
	})
	g := newGeneration(snap, nil)
	g.versions(g.translate(p))
	i := 1
	b.Run("shared/translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.translate(proxy(i))
			i++
		}
	})
	out = g.translate(proxy(i))
	b.Run("shared/hash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.versions(out)
		}
	})
	set, _ := g.versions(out)
	g.check(out, set.versions)
	b.Run("shared/check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := g.check(out, set.versions); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shared/check-distinct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := g.cache.Check(out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shared/first", func(b *testing.B) {
		for b.Loop() {
			g := newGeneration(snap, nil)
			out := g.translate(p)
			set, _ := g.versions(out)
			g.check(out, set.versions)
		}
	})
}
