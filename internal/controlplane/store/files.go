package store

import "github.com/weftmesh/weft/internal/config"

// IgnoreFile lists, at the root of a config directory, paths to skip (the
// rules `weft analyze` applies to directories too).
const IgnoreFile = config.IgnoreFile

// ListFiles returns the config files under root (or root itself when it is
// a file): *.yaml, *.yml and *.json, recursively, sorted, skipping hidden
// entries (apply's temp files are hidden) and what root/.weftignore lists.
// It is the loader's own listing, so the store serves exactly what
// `weft analyze DIR` checks.
func ListFiles(root string) ([]string, error) { return config.ListFiles(root) }
