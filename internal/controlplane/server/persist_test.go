package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// A restarted control plane serves the workloads its predecessor had
// registered before any proxy reconnects (issue 18 item 2; before: empty
// endpoints until each proxy reconnected, 503 for 4-6 s), and forgets
// those whose proxy does not come back within the restore grace.
func TestRegistrationsSurviveRestart(t *testing.T) {
	cfg, state := t.TempDir(), filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(filepath.Join(cfg, "bookinfo.yaml"), []byte(bookinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(restoreGrace time.Duration) (*server.Server, func()) {
		s, err := server.New(server.Options{ConfigDir: cfg, StateDir: state, XDSAddress: "127.0.0.1:0", MonitoringAddress: "127.0.0.1:0",
			Grace: 50 * time.Millisecond, RestoreGrace: restoreGrace, Debounce: 10 * time.Millisecond, TokenDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		return s, func() { cancel(); <-done }
	}
	endpoints := func(s *server.Server) int {
		for _, svc := range s.XDS().Snapshot().Services {
			if svc.Hostname == "ratings.default.svc.cluster.local" {
				return len(svc.Endpoints)
			}
		}
		return -1
	}
	s1, stop1 := run(0)
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.9", Name: "ratings-v1", Namespace: "default",
		Labels: map[string]string{"app": "ratings"}, Ports: []node.Port{{Name: "http", Port: 9080, Protocol: "HTTP"}}}
	c, err := meshtest.DialXDS(s1.XDSAddr(), m, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "auto-registered endpoint", func() (bool, string) { return endpoints(s1) == 1, "" })
	file := filepath.Join(state, "registrations.json")
	eventually(t, "registration saved", func() (bool, string) {
		data, _ := os.ReadFile(file)
		return len(data) > 0 && bytesContains(data, m.ID()), string(data)
	})
	// The control plane stops while the proxy is connected (as kill -9
	// would: the file is written as registrations change, not at exit).
	stop1()
	c.Close()
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("registrations file: %v %v", fi.Mode(), err)
	}

	// Restarted: the endpoint is there in the first snapshot, before any
	// proxy has connected.
	s2, stop2 := run(300 * time.Millisecond)
	defer stop2()
	if n := endpoints(s2); n != 1 {
		t.Fatalf("restarted control plane serves %d ratings endpoints, want the restored 1", n)
	}
	// Its proxy never comes back: it goes after the restore grace, and the
	// file follows.
	eventually(t, "restored endpoint expires", func() (bool, string) { return endpoints(s2) == 0, "" })
	eventually(t, "file updated", func() (bool, string) {
		data, _ := os.ReadFile(file)
		return !bytesContains(data, m.ID()), string(data)
	})
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }
