// Package statedir writes the control plane's private state (CA keys, the
// admin token, the join-token key, persisted registrations, the
// revocation list; see server.Options.StateDir): files that only the
// control plane's user may read.
package statedir

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, mode 0600, atomically: the data goes
// to a temporary file beside path that is never readable by others, is
// synced, and is renamed over path, so a reader or a crash sees the old or
// the new file, never a torn one.
func WriteFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600) // CreateTemp uses 0600 already; umask-proof
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
