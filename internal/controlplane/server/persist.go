package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/statedir"
)

// Auto-registered workloads are kept in the state directory so that a
// restarted control plane serves the endpoints it knew at once, instead of
// empty ones until every proxy has reconnected (issue 18: a client proxy
// reconnecting first got 503 for seconds). Restored registrations last
// RestoreGrace unless their proxy reconnects and owns them again.

// registrationsFile is the file, in the state directory, holding them.
const registrationsFile = "registrations.json"

// DefaultRestoreGrace outlasts the proxies' reconnect backoff (at most
// 15 s) with room for a slow start.
const DefaultRestoreGrace = 30 * time.Second

type savedRegistrations struct {
	Version   int                 `json:"version"`
	Workloads []savedRegistration `json:"workloads"`
}

type savedRegistration struct {
	Node     string             `json:"node"`
	Workload *registry.Workload `json:"workload"`
}

// encodeRegistrations is deterministic (sorted by node ID), so unchanged
// registrations are not rewritten.
func encodeRegistrations(m map[string]*registry.Workload) ([]byte, error) {
	out := savedRegistrations{Version: 1, Workloads: make([]savedRegistration, 0, len(m))}
	for id, w := range m {
		out.Workloads = append(out.Workloads, savedRegistration{Node: id, Workload: w})
	}
	sort.Slice(out.Workloads, func(i, j int) bool { return out.Workloads[i].Node < out.Workloads[j].Node })
	return json.MarshalIndent(out, "", " ")
}

// loadRegistrations reads the saved registrations; a missing file is none.
func loadRegistrations(dir string) (map[string]*registry.Workload, error) {
	data, err := os.ReadFile(filepath.Join(dir, registrationsFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var in savedRegistrations
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%s: %w", registrationsFile, err)
	}
	if in.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", registrationsFile, in.Version)
	}
	m := make(map[string]*registry.Workload, len(in.Workloads))
	for _, r := range in.Workloads {
		if r.Node == "" || r.Workload == nil || r.Workload.Address == "" {
			continue
		}
		r.Workload.Source = registry.SourceProxy
		m[r.Node] = r.Workload
	}
	return m, nil
}

// saveRegistrations writes the current registrations when they changed
// since the last save. Called from the rebuild loop only.
func (s *Server) saveRegistrations() {
	if s.opts.StateDir == "" {
		return
	}
	data, err := encodeRegistrations(s.auto.Registered())
	if err != nil {
		s.log.Error("encoding registrations", "err", err)
		return
	}
	if bytes.Equal(data, s.saved) {
		return
	}
	if err := statedir.WriteFile(filepath.Join(s.opts.StateDir, registrationsFile), data); err != nil {
		s.log.Error("saving registrations", "err", err)
		return
	}
	s.saved = data
}
