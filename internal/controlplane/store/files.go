package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// IgnoreFile lists, at the root of a config directory, paths to skip: one
// relative path or glob per line, "#" comments, a trailing "/" for
// directories only, a pattern without "/" matching a name at any depth
// (the rules `weft analyze` applies to directories too).
const IgnoreFile = ".weftignore"

// ListFiles returns the config files under root (or root itself when it is
// a file): *.yaml, *.yml and *.json, recursively, sorted, skipping hidden
// entries (apply's temp files are hidden) and what root/.weftignore lists.
func ListFiles(root string) ([]string, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{root}, nil
	}
	ign, err := readIgnore(filepath.Join(root, IgnoreFile))
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // vanished while walking
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(e.Name(), ".") || ign.match(filepath.ToSlash(rel), e.IsDir()) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	slices.Sort(files)
	return files, err
}

type ignoreList []string

func readIgnore(path string) (ignoreList, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l ignoreList
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			l = append(l, strings.TrimPrefix(line, "/"))
		}
	}
	return l, nil
}

func (l ignoreList) match(rel string, dir bool) bool {
	for _, pat := range l {
		dirOnly := strings.HasSuffix(pat, "/")
		pat = strings.TrimSuffix(pat, "/")
		if dirOnly && !dir {
			continue
		}
		target := rel
		if !strings.Contains(pat, "/") {
			target = rel[strings.LastIndex(rel, "/")+1:]
		}
		if ok, _ := filepath.Match(pat, target); ok {
			return true
		}
	}
	return false
}
