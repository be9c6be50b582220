package kit

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
)

// SharedMesh is the demo mesh (internal/demo: control plane, sample apps,
// sidecars and gateways as processes) that a suite starts once, on first
// use, and stops at the end of its TestMain.
type SharedMesh struct {
	once sync.Once
	mesh *demo.Mesh
	err  error
	dir  string // config and logs
}

// Start starts the mesh on first use with opts; ConfigDir, Seed (the
// repository's examples/) and Log (warnings to stderr) are filled in when
// empty. Every later call returns the same mesh, or fails t with the first
// call's error.
func (s *SharedMesh) Start(t testing.TB, opts demo.Options) *demo.Mesh {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if s.dir, s.err = os.MkdirTemp("", "weft-e2e-mesh-"); s.err != nil {
			return
		}
		if opts.ConfigDir == "" {
			opts.ConfigDir = filepath.Join(s.dir, "config")
		}
		if opts.Seed == nil {
			opts.Seed = os.DirFS(filepath.Join(RepoRoot(), "examples"))
		}
		if opts.Log == nil {
			opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		s.mesh, s.err = demo.Start(ctx, opts)
	})
	if s.err != nil {
		t.Fatalf("starting the mesh: %v", s.err)
	}
	return s.mesh
}

// Stop stops the mesh if it was started. Its config and logs are removed
// unless keep is set (a failed run: the logs explain why).
func (s *SharedMesh) Stop(keep bool) {
	if s.mesh != nil {
		s.mesh.Stop()
	}
	if s.dir != "" && !keep {
		os.RemoveAll(s.dir)
	}
}

// ViaSidecar is a client that sends through a workload's sidecar, the way
// that workload's app does (HTTP_PROXY).
func ViaSidecar(m *demo.Mesh, workload string) *http.Client {
	return ProxyClient(m.Workload(workload).ProxyURL())
}
