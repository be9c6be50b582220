// Package store holds the control plane's configuration source in
// standalone mode: a directory of Istio YAML files, watched for changes.
// Each file is loaded and validated on its own; a file that fails keeps
// serving its last good version, and its errors (file:line) are reported
// once in the log, in Status and in metrics. Apply and Delete edit the
// directory atomically (temp file + rename), so the directory stays the
// single source of truth (a git checkout works).
package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
)

// maxFileSize bounds one config file (bad input must not exhaust memory).
const maxFileSize = 16 << 20

// Options configure a Dir.
type Options struct {
	Logger *slog.Logger
	// Debounce groups bursts of file events (editors write several);
	// default 100ms.
	Debounce time.Duration
	// OnChange is called after a reload changed the served resources.
	OnChange func()
}

// Dir is a watched configuration directory. Methods are safe for
// concurrent use.
type Dir struct {
	root string
	opts Options
	log  *slog.Logger

	writeMu  sync.Mutex // serialises Apply/Delete (read-modify-write of files)
	reloadMu sync.Mutex // one Reload at a time, so a slow one cannot undo a newer one
	mu       sync.Mutex
	files    map[string]*fileState // by path
	gen      uint64                // bumps when served resources change
}

// fileState is one file: what it serves and what is wrong with it now.
type fileState struct {
	sum      [32]byte
	good     []*config.Resource // last good version; served
	data     []byte             // content of the last good version
	docs     []*doc             // its documents, split on first use (docsOf)
	split    bool               // docs are set
	errs     []string           // current problems; nil when the file is good
	rejected bool               // the current content is not what is served
}

// FileStatus is one file's state, for status output.
type FileStatus struct {
	File      string   `json:"file"`
	Resources int      `json:"resources"`
	Errors    []string `json:"errors,omitempty"`
	// Stale is true when the file's current content is rejected and its
	// last good version (possibly nothing) is still served.
	Stale bool `json:"stale,omitempty"`
}

// Open loads dir. Files that fail are reported in Status, not as an error;
// an error means the directory itself cannot be read.
func Open(dir string, opts Options) (*Dir, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("config dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("config dir %s: not a directory", dir)
	}
	onChange := opts.OnChange
	opts.OnChange = nil // the initial load is not a change
	d := &Dir{root: abs, opts: opts, log: opts.Logger, files: map[string]*fileState{}}
	if _, err := d.Reload(); err != nil {
		return nil, err
	}
	d.opts.OnChange = onChange
	return d, nil
}

// Root returns the directory's absolute path.
func (d *Dir) Root() string { return d.root }

// Generation counts changes of the served resources.
func (d *Dir) Generation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen
}

func (d *Dir) listFiles() ([]string, error) { return ListFiles(d.root) }

// Reload rescans the directory and reports whether the served resources
// changed. Unchanged files are not re-parsed.
func (d *Dir) Reload() (bool, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	paths, err := d.listFiles()
	if err != nil {
		return false, fmt.Errorf("reading config dir: %w", err)
	}
	type read struct {
		path string
		data []byte
		sum  [32]byte
		err  error
	}
	var reads []read
	for _, p := range paths {
		data, err := readLimited(p)
		reads = append(reads, read{path: p, data: data, sum: sha256.Sum256(data), err: err})
	}

	d.mu.Lock()
	changed := false
	present := map[string]bool{}
	for _, r := range reads {
		present[r.path] = true
	}
	for p := range d.files {
		if !present[p] {
			if len(d.files[p].good) > 0 {
				changed = true
			}
			if len(d.files[p].errs) > 0 {
				d.log.Info("config file removed", "file", d.rel(p))
			}
			delete(d.files, p)
		}
	}
	// Keys served by files that did not change are the baseline; a
	// changed file may not take a key another file defines.
	var todo []read
	owner := map[config.Key]string{}
	for _, r := range reads {
		fs := d.files[r.path]
		if fs != nil && fs.sum == r.sum && r.err == nil {
			for _, res := range fs.good {
				owner[res.Key()] = r.path
			}
			continue
		}
		todo = append(todo, r)
	}
	for _, r := range todo {
		fs := d.files[r.path]
		if fs == nil {
			fs = &fileState{}
			d.files[r.path] = fs
		}
		fs.sum = r.sum
		var errs []string
		var good []*config.Resource
		if r.err != nil {
			errs = []string{fmt.Sprintf("%s: %v", d.rel(r.path), r.err)}
		} else {
			good, errs = d.parse(r.path, r.data, owner)
		}
		if errs != nil {
			if !slices.Equal(errs, fs.errs) {
				d.log.Error("config file rejected; its last good version keeps serving", "file", d.rel(r.path), "errors", strings.Join(errs, "; "))
			}
			fs.errs, fs.rejected = errs, true
			for _, res := range fs.good {
				if _, taken := owner[res.Key()]; !taken {
					owner[res.Key()] = r.path
				}
			}
			continue
		}
		if fs.errs != nil {
			d.log.Info("config file accepted again", "file", d.rel(r.path))
		}
		fs.errs, fs.rejected = nil, false
		fs.good, fs.data, fs.docs, fs.split = good, r.data, nil, false
		for _, res := range good {
			owner[res.Key()] = r.path
		}
		changed = true
	}
	if changed {
		d.gen++
	}
	d.mu.Unlock()
	if changed && d.opts.OnChange != nil {
		d.opts.OnChange()
	}
	return changed, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", maxFileSize)
	}
	return data, nil
}

// parse loads and validates one file. Positions name the file relative to
// the directory. owner maps keys to the file serving them.
func (d *Dir) parse(path string, data []byte, owner map[config.Key]string) ([]*config.Resource, []string) {
	name := d.rel(path)
	rs, err := config.LoadReader(name, bytes.NewReader(data), config.Options{})
	var errs []string
	if err != nil {
		var el config.ErrorList
		if errors.As(err, &el) {
			for _, e := range el {
				errs = append(errs, e.Error())
			}
		} else {
			errs = append(errs, err.Error())
		}
	}
	for _, r := range rs {
		for _, e := range config.Validate(r) {
			errs = append(errs, e.Error())
		}
		if other, ok := owner[r.Key()]; ok && other != path {
			errs = append(errs, fmt.Sprintf("%s: duplicate %s: already defined in %s", r.Pos, r.Key(), d.rel(other)))
		}
	}
	if len(rs) > maxDocs {
		errs = append(errs, fmt.Sprintf("%s: more than %d documents", name, maxDocs))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// The documents (for Get) are split when first asked for: splitting
	// parses the file twice more, two thirds of a reload's CPU, on the
	// way from an edit to the push.
	return rs, nil
}

// docsOf returns the documents of a file's last good version, splitting
// them on first use; d.mu is held.
func (d *Dir) docsOf(path string, fs *fileState) []*doc {
	if !fs.split {
		fs.docs, _ = splitDocs(d.rel(path), fs.data, config.Options{})
		fs.split = true
	}
	return fs.docs
}

func (d *Dir) rel(p string) string {
	if r, err := filepath.Rel(d.root, p); err == nil {
		return r
	}
	return p
}

// Resources returns every served resource, by file then document order.
// The resources are shared and must not be modified.
func (d *Dir) Resources() []*config.Resource {
	d.mu.Lock()
	defer d.mu.Unlock()
	paths := make([]string, 0, len(d.files))
	for p := range d.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var out []*config.Resource
	for _, p := range paths {
		out = append(out, d.files[p].good...)
	}
	return out
}

// Status lists every file with its problems, sorted by name.
func (d *Dir) Status() []FileStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]FileStatus, 0, len(d.files))
	for p, fs := range d.files {
		out = append(out, FileStatus{File: d.rel(p), Resources: len(fs.good), Errors: fs.errs, Stale: fs.rejected})
	}
	slices.SortFunc(out, func(a, b FileStatus) int { return cmp.Compare(a.File, b.File) })
	return out
}

// Entry is one served resource as written in its file.
type Entry struct {
	Resource *config.Resource
	File     string // relative to the directory
	YAML     []byte // the document that defines it
}

// Get returns served resources of a kind ("" = all), optionally one
// namespace ("" = all) and name ("" = all), sorted by kind, namespace, name.
func (d *Dir) Get(kind config.Kind, namespace, name string) []Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Entry
	for p, fs := range d.files {
		for _, r := range fs.good {
			if (kind != "" && r.Kind != kind) || (namespace != "" && r.Namespace != namespace) || (name != "" && r.Name != name) {
				continue
			}
			e := Entry{Resource: r, File: d.rel(p)}
			for _, dc := range d.docsOf(p, fs) {
				if dc.has(r.Key()) {
					e.YAML, _ = encodeDocs([]*yaml.Node{dc.node})
					break
				}
			}
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Resource.Kind, b.Resource.Kind), cmp.Compare(a.Resource.Namespace, b.Resource.Namespace), cmp.Compare(a.Resource.Name, b.Resource.Name))
	})
	return out
}

// fileOf returns the file serving a key.
func (d *Dir) fileOf(k config.Key) (string, *fileState) {
	for p, fs := range d.files {
		for _, r := range fs.good {
			if r.Key() == k {
				return p, fs
			}
		}
	}
	return "", nil
}

// Watch reloads on file-system events, debounced, until ctx ends.
func (d *Dir) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching config dir: %w", err)
	}
	defer w.Close()
	addAll := func() {
		filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				if p != d.root && strings.HasPrefix(e.Name(), ".") {
					return filepath.SkipDir
				}
				w.Add(p)
			}
			return nil
		})
	}
	addAll()
	// Catch edits made between Open and the watch starting.
	if _, err := d.Reload(); err != nil {
		d.log.Error("reloading config", "err", err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if strings.HasPrefix(filepath.Base(ev.Name), tempPrefix) {
				continue // our own temp files; the rename that follows counts
			}
			// Other hidden names still trigger a (cheap, hash-compared)
			// reload: a Kubernetes ConfigMap mount swaps a "..data" symlink.
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					addAll()
				}
			}
			timer.Reset(d.opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Warn("config dir watch error", "err", err)
			timer.Reset(d.opts.Debounce)
		case <-timer.C:
			if _, err := d.Reload(); err != nil {
				d.log.Error("reloading config", "err", err)
			}
		}
	}
}
