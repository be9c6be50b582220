package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/server"
)

// tokenTTL: demo proxies renew with their certificate; the token is only
// needed again when a proxy restarts, which the supervisor may do at any
// time while the demo runs.
const tokenTTL = 7 * 24 * time.Hour

// identityFiles mints a join token for w's namespace and service account
// (as `weft token create` does, with the control plane's key) and writes
// it, with the mesh's root certificate, where w's proxy can read them:
// the proxy is given the root (never trusting the CA on first use) and
// proves its identity with the token.
func (m *Mesh) identityFiles(w *Workload, captured bool) (rootCert, tokenFile string, err error) {
	state := server.DefaultStateDir(m.opts.ConfigDir)
	root, err := os.ReadFile(filepath.Join(state, "ca", "root-cert.pem"))
	if err != nil {
		return "", "", fmt.Errorf("the control plane's root certificate: %w", err)
	}
	tk, err := ca.LoadTokens(state, nil)
	if err != nil {
		return "", "", err
	}
	tok, err := tk.Create(w.Namespace, w.ServiceAccount, tokenTTL)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(filepath.Dir(m.opts.LogDir), "identity")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	rootCert = filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(rootCert, root, 0o644); err != nil {
		return "", "", err
	}
	tokenFile = filepath.Join(dir, w.Namespace+"."+w.Name+".token")
	os.Remove(tokenFile)
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return "", "", err
	}
	if captured {
		// Captured proxies run as the proxy user.
		uid, _ := strconv.Atoi(proxyUID)
		if err := os.Chown(tokenFile, uid, -1); err != nil {
			return "", "", err
		}
	}
	return rootCert, tokenFile, nil
}
