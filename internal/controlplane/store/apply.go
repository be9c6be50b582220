package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
)

// Action says what Apply did to one resource.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
)

// Result is what happened to one resource.
type Result struct {
	Key    config.Key `json:"key"`
	File   string     `json:"file"`
	Action Action     `json:"action"`
}

// Apply validates every document of data (name is used in error
// positions) and writes it into the directory: a resource that already
// lives in a file replaces its document there, a new one goes to
// <kind>-<namespace>-<name>.yaml. Nothing is written when any document is
// invalid; the error is a config.ErrorList. Each file is replaced
// atomically (temp file + rename).
func (d *Dir) Apply(name string, data []byte, opts config.Options) ([]Result, error) {
	rs, err := config.LoadReader(name, bytes.NewReader(data), opts)
	if err != nil {
		return nil, err
	}
	var errs config.ErrorList
	for _, r := range rs {
		errs = append(errs, config.Validate(r)...)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	if len(rs) == 0 {
		return nil, config.ErrorList{{Pos: config.Position{File: name}, Msg: "no resources to apply"}}
	}
	docs, err := splitDocs(name, data, opts)
	if err != nil {
		return nil, err
	}
	nodeOf := map[config.Key]*yaml.Node{}
	for _, dc := range docs {
		if len(dc.keys) == 1 {
			nodeOf[dc.keys[0]] = dc.node
		}
	}

	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	// Plan: target file → its documents after the change.
	plan := map[string][]*doc{}
	var results []Result
	for _, r := range rs {
		k := r.Key()
		n := nodeOf[k]
		if n == nil {
			return nil, fmt.Errorf("%s: cannot isolate the document of %s", r.Pos, k)
		}
		d.mu.Lock()
		path, _ := d.fileOf(k)
		d.mu.Unlock()
		action := Configured
		if path == "" {
			path = filepath.Join(d.root, fileName(k))
			action = Created
		}
		cur, ok := plan[path]
		if !ok {
			cur, err = d.diskDocs(path)
			if err != nil {
				return nil, err
			}
		}
		replaced := false
		for i, dc := range cur {
			if dc.has(k) {
				if sameNode(dc.node, n) {
					action = Unchanged
				}
				cur[i] = &doc{node: n, keys: []config.Key{k}}
				replaced = true
				break
			}
		}
		if !replaced {
			cur = append(cur, &doc{node: n, keys: []config.Key{k}})
			action = Created
		}
		plan[path] = cur
		results = append(results, Result{Key: k, File: d.rel(path), Action: action})
	}
	if err := d.writePlan(plan); err != nil {
		return nil, err
	}
	if _, err := d.Reload(); err != nil {
		return results, err
	}
	return results, d.planErrors(plan)
}

// Delete removes resources from the files that define them (a file left
// empty is removed). Unknown keys are an error; nothing is changed then.
func (d *Dir) Delete(keys []config.Key) ([]Result, error) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	plan := map[string][]*doc{}
	var results []Result
	for _, k := range keys {
		d.mu.Lock()
		path, _ := d.fileOf(k)
		d.mu.Unlock()
		if path == "" {
			return nil, fmt.Errorf("%s not found", k)
		}
		cur, ok := plan[path]
		if !ok {
			var err error
			if cur, err = d.diskDocs(path); err != nil {
				return nil, err
			}
		}
		plan[path] = slices.DeleteFunc(cur, func(dc *doc) bool { return dc.has(k) })
		results = append(results, Result{Key: k, File: d.rel(path), Action: Deleted})
	}
	if err := d.writePlan(plan); err != nil {
		return nil, err
	}
	_, err := d.Reload()
	return results, err
}

// DeleteDocs deletes the resources that documents in data name.
func (d *Dir) DeleteDocs(name string, data []byte, opts config.Options) ([]Result, error) {
	rs, err := config.LoadReader(name, bytes.NewReader(data), opts)
	if err != nil {
		return nil, err
	}
	keys := make([]config.Key, 0, len(rs))
	for _, r := range rs {
		keys = append(keys, r.Key())
	}
	return d.Delete(keys)
}

// diskDocs reads the documents currently in a file (none if it does not
// exist). A file that no longer parses cannot be edited in place.
func (d *Dir) diskDocs(path string) ([]*doc, error) {
	data, err := readLimited(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	docs, err := splitDocs(d.rel(path), data, config.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s does not parse, fix or remove it first: %w", d.rel(path), err)
	}
	return docs, nil
}

func (d *Dir) writePlan(plan map[string][]*doc) error {
	paths := make([]string, 0, len(plan))
	for p := range plan {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		docs := plan[p]
		if len(docs) == 0 {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		nodes := make([]*yaml.Node, len(docs))
		for i, dc := range docs {
			nodes[i] = dc.node
		}
		b, err := encodeDocs(nodes)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", d.rel(p), err)
		}
		if err := writeAtomic(p, b); err != nil {
			return err
		}
	}
	return nil
}

// planErrors reports problems the reload found in the files just written
// (e.g. a conflict no single document shows).
func (d *Dir) planErrors(plan map[string][]*doc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var msgs []string
	for p := range plan {
		if fs := d.files[p]; fs != nil && fs.errs != nil {
			msgs = append(msgs, fs.errs...)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	slices.Sort(msgs)
	return fmt.Errorf("written but rejected: %s", msgs)
}

// tempPrefix starts apply's temp files (hidden, so never loaded).
const tempPrefix = ".weft-"

// writeAtomic replaces path with data: readers see the old or the new
// file, never a partial one. The temp file is hidden, so the watcher and
// the loader ignore it.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func sameNode(a, b *yaml.Node) bool {
	x, err1 := encodeDocs([]*yaml.Node{a})
	y, err2 := encodeDocs([]*yaml.Node{b})
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
