package ca

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/statedir"
	"github.com/weftmesh/weft/internal/meshtls"
)

// Revocation is per identity: everything issued to namespace/serviceAccount
// before a moment — join tokens by their issue time, workload certificates
// by when the CA signed them — stops authenticating. A leaked token is
// revoked this way; the proxy that used it cannot renew its certificate or
// reconnect, and a new token minted afterwards admits the workload again.
// The list lives in <state-dir>/revoked.json (0600), written by
// `weft token revoke` and re-read by the control plane when it changes.

const revokedFile = "revoked.json"

// ErrRevoked: the credential was issued before its identity was revoked.
var ErrRevoked = errors.New("credential revoked")

// Revocations reads and writes the revocation list of a state directory.
type Revocations struct {
	path string

	mu   sync.Mutex
	mod  time.Time
	size int64
	m    map[string]int64 // "ns/sa" -> unix second before which all is void
}

// NewRevocations uses stateDir's list (which need not exist yet).
func NewRevocations(stateDir string) *Revocations {
	return &Revocations{path: filepath.Join(stateDir, revokedFile)}
}

func revKey(ns, sa string) string { return ns + "/" + sa }

// load re-reads the file when its size or mtime changed.
func (r *Revocations) load() (map[string]int64, error) {
	st, err := os.Stat(r.path)
	if errors.Is(err, os.ErrNotExist) {
		r.m, r.mod, r.size = nil, time.Time{}, 0
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.m != nil && st.ModTime().Equal(r.mod) && st.Size() == r.size {
		return r.m, nil
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	r.m, r.mod, r.size = m, st.ModTime(), st.Size()
	return m, nil
}

// Check refuses a credential of id issued at issued when id was revoked
// after that. An unreadable list fails closed.
func (r *Revocations) Check(id meshtls.Identity, issued time.Time) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	m, err := r.load()
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if before, ok := m[revKey(id.Namespace, id.ServiceAccount)]; ok && issued.Unix() < before {
		return fmt.Errorf("%w: %s/%s revoked at %s", ErrRevoked, id.Namespace, id.ServiceAccount, time.Unix(before, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// Revoke voids every token and certificate issued to namespace/sa up to
// and including the second of at, and returns that moment; credentials
// issued from the next second on are valid.
func (r *Revocations) Revoke(namespace, serviceAccount string, at time.Time) (time.Time, error) {
	if err := checkName("namespace", namespace); err != nil {
		return time.Time{}, err
	}
	if err := checkName("service account", serviceAccount); err != nil {
		return time.Time{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.load()
	if err != nil {
		return time.Time{}, err
	}
	next := map[string]int64{}
	for k, v := range m {
		next[k] = v
	}
	before := at.Unix() + 1
	next[revKey(namespace, serviceAccount)] = before
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return time.Time{}, err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
		return time.Time{}, err
	}
	if err := statedir.WriteFile(r.path, append(b, '\n')); err != nil {
		return time.Time{}, err
	}
	r.m = nil // re-read on next use
	return time.Unix(before, 0), nil
}
