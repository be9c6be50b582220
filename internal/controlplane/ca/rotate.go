package ca

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/statedir"
)

// Root rotation with an overlapping trust bundle (self-signed mode):
//
//  1. Rotate generates a new root and adds it to the trust bundle; the old
//     root keeps signing. Proxies pick the new bundle up with their next
//     certificate (they renew at half-life).
//  2. After BundleGrace, Advance makes the new root the signer. The old
//     root stays in the bundle, retired, until every certificate it signed
//     has expired (MaxTTL), so peers holding old certificates are still
//     trusted.
//  3. Advance drops retired roots whose certificates have all expired.
//
// At no point does a proxy see a certificate signed by a root it does not
// trust, so no handshake fails because of the rotation.

// ErrRotationInProgress: Rotate was called while a new root is pending.
var ErrRotationInProgress = errors.New("a root rotation is already in progress")

// Rotate starts a root rotation (step 1). It is persisted: a restart
// continues it.
func (c *CA) Rotate() error {
	if c.plugin {
		return errors.New("root rotation of a plug-in CA is done by replacing its files")
	}
	kc, err := c.newRoot()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.pending != nil {
		c.mu.Unlock()
		return ErrRotationInProgress
	}
	st := c.state
	st.PendingSince = c.opts.Now()
	if dir := c.dir(); dir != "" {
		if err := writeKeyCert(dir, pendingCertFile, pendingKeyFile, kc); err != nil {
			c.mu.Unlock()
			return err
		}
		if err := writeState(dir, st); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.pending, c.state = kc, st
	err = c.rebuildBundle()
	c.rebuildPool()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.log.Info("root rotation started: new root added to the trust bundle", "subject", kc.cert.Subject.String(),
		"signs-from", st.PendingSince.Add(c.opts.BundleGrace))
	c.notify()
	return nil
}

// Advance moves a rotation on when its time has come (steps 2 and 3) and
// reports whether anything changed. The control plane calls it
// periodically.
func (c *CA) Advance() (bool, error) {
	if c.plugin {
		return false, nil
	}
	now := c.opts.Now()
	c.mu.Lock()
	st := c.state
	st.Retired = nil
	for _, r := range c.state.Retired {
		if now.Before(r.Until) {
			st.Retired = append(st.Retired, r)
		}
	}
	changed := len(st.Retired) != len(c.state.Retired)
	promote := c.pending != nil && !now.Before(c.state.PendingSince.Add(c.opts.BundleGrace))
	if !changed && !promote {
		c.mu.Unlock()
		return false, nil
	}
	signer := c.signer
	dir := c.dir()
	if promote {
		st.Retired = append(st.Retired, retiredRoot{CertPEM: string(encodeCert(signer.cert.Raw)), Until: now.Add(c.opts.MaxTTL)})
		// Crash safety: the old root is recorded as retired before the new
		// one replaces it on disk.
		if dir != "" {
			if err := writeState(dir, st); err != nil {
				c.mu.Unlock()
				return false, err
			}
			if err := writeKeyCert(dir, rootCertFile, rootKeyFile, c.pending); err != nil {
				c.mu.Unlock()
				return false, err
			}
		}
		signer = c.pending
		st.PendingSince = time.Time{}
	}
	if dir != "" {
		if err := writeState(dir, st); err != nil {
			c.mu.Unlock()
			return false, err
		}
		if promote {
			os.Remove(filepath.Join(dir, pendingCertFile))
			os.Remove(filepath.Join(dir, pendingKeyFile))
		}
	}
	c.signer, c.state = signer, st
	if promote {
		c.pending = nil
	}
	err := c.rebuildBundle()
	c.rebuildPool()
	c.mu.Unlock()
	if err != nil {
		return false, err
	}
	if promote {
		c.log.Info("root rotation: the new root signs now; the old one stays trusted", "subject", signer.cert.Subject.String())
	}
	c.notify()
	return true, nil
}

// Rotating reports whether a new root is pending, and since when.
func (c *CA) Rotating() (bool, time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pending != nil, c.state.PendingSince
}

func writeState(dir string, st rotationState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := statedir.WriteFile(filepath.Join(dir, rotationFile), b); err != nil {
		return fmt.Errorf("ca: saving rotation state: %w", err)
	}
	return nil
}
