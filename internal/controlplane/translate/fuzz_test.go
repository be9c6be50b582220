package translate

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/node"
)

// FuzzBuild feeds arbitrary config through the loader and registry into
// Build for a sidecar (capture and explicit), a router and a gRPC client:
// whatever decodes must translate without panicking and pass Check.
// Seeds are the golden cases' configs.
func FuzzBuild(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/config.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	metas := []*node.Meta{
		{Type: node.Sidecar, IP: "198.18.0.1", Name: "a", Namespace: "default", Capture: true, AppAddress: "127.0.0.1",
			Labels: map[string]string{"app": "reviews", "version": "v1"}, Ports: []node.Port{{Name: "http", Port: 9080, Protocol: "HTTP"}}},
		{Type: node.Sidecar, IP: "127.0.10.2", Name: "b", Namespace: "default", AppAddress: "127.0.20.2", ProxyPort: 15080,
			Labels: map[string]string{"app": "productpage"}, Ports: []node.Port{{Name: "tcp", Port: 9000, Protocol: "TCP"}}},
		{Type: node.Router, IP: "198.18.1.1", Name: "gw", Namespace: "istio-system", Capture: true,
			Labels: map[string]string{"istio": "ingressgateway"}},
		{Type: node.Sidecar, IP: "198.18.0.9", Name: "g", Namespace: "default", Generator: "grpc"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := config.LoadReader("fuzz.yaml", bytes.NewReader(data), config.Options{})
		if err != nil && len(res) == 0 {
			return
		}
		var ws []*registry.Workload
		for _, m := range metas {
			ws = append(ws, registry.FromMeta(m))
		}
		snap, err := registry.Build(res, ws)
		if err != nil {
			return
		}
		for _, m := range metas {
			p := &model.Proxy{Meta: m, ID: m.ID(), Services: registry.ServicesFor(snap, m)}
			if err := Build(snap, p).Check(); err != nil {
				t.Errorf("%s: %v", m.Name, err)
			}
		}
	})
}
