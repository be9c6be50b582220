package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Options tune loading.
type Options struct {
	// DefaultNamespace is given to resources without metadata.namespace;
	// "default" if empty.
	DefaultNamespace string
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Unsupported, when set, receives documents of Istio kinds Weft does
	// not implement (EnvoyFilter, WasmPlugin, Gateway API …) instead of
	// an error: weft analyze reports them as warnings.
	Unsupported func(*Error)
}

func (o Options) namespace() string {
	if o.DefaultNamespace == "" {
		return "default"
	}
	return o.DefaultNamespace
}

// StdinName is the file name positions carry for documents read from stdin.
const StdinName = "<stdin>"

// LoadReader decodes every document of one multi-document YAML or JSON
// stream. name is used in positions. It returns every resource that decoded
// cleanly; if any document failed, the error is an ErrorList naming each
// problem. Duplicates within the stream are errors too.
func LoadReader(name string, r io.Reader, opts Options) ([]*Resource, error) {
	var errs ErrorList
	res := loadStream(name, r, opts, &errs)
	res = dedupe(res, &errs)
	errs.Sort()
	return res, errs.errOrNil()
}

// LoadFile reads one file, whatever its extension.
func LoadFile(path string, opts Options) ([]*Resource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ErrorList{{Pos: Position{File: path}, Msg: err.Error()}}
	}
	defer f.Close()
	return LoadReader(path, f, opts)
}

// LoadPaths loads files, directories and "-" (opts.Stdin). Directories are
// walked recursively for *.yaml, *.yml and *.json, in lexical order,
// skipping hidden entries and whatever the directory's .weftignore lists
// (one relative path or glob per line; "#" starts a comment; a trailing "/"
// matches directories only; a pattern without "/" matches a name at any
// depth). The same kind/namespace/name defined twice is an error that names
// both places; the first definition is kept.
func LoadPaths(paths []string, opts Options) ([]*Resource, error) {
	var errs ErrorList
	var out []*Resource
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				errs = append(errs, &Error{Pos: Position{File: StdinName}, Msg: "no stdin to read"})
				continue
			}
			out = append(out, loadStream(StdinName, opts.Stdin, opts, &errs)...)
			continue
		}
		files, err := listFiles(p)
		if err != nil {
			errs = append(errs, &Error{Pos: Position{File: p}, Msg: err.Error()})
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				errs = append(errs, &Error{Pos: Position{File: f}, Msg: err.Error()})
				continue
			}
			out = append(out, loadStream(f, fh, opts, &errs)...)
			fh.Close()
		}
	}
	out = dedupe(out, &errs)
	errs.Sort()
	return out, errs.errOrNil()
}

// IgnoreFile is the name of the per-directory ignore list.
const IgnoreFile = ".weftignore"

// ListFiles returns the files LoadPaths reads for one path argument: the
// file itself, or a directory's *.yaml, *.yml and *.json files (recursive,
// sorted, hidden entries and .weftignore matches skipped).
func ListFiles(path string) ([]string, error) { return listFiles(path) }

func listFiles(root string) ([]string, error) {
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
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			// A watched directory changes under the walk: an entry that
			// vanished is not an error, anything else at any depth is.
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".") || ign.match(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
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
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		l = append(l, strings.TrimPrefix(line, "/"))
	}
	return l, nil
}

// match reports whether rel (slash-separated, relative to the root) is
// ignored.
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

// dedupe drops resources whose Key was already seen, with an error naming
// both places.
func dedupe(in []*Resource, errs *ErrorList) []*Resource {
	seen := make(map[Key]*Resource, len(in))
	out := in[:0]
	for _, r := range in {
		if first, ok := seen[r.Key()]; ok {
			*errs = append(*errs, &Error{Pos: r.Pos, Msg: fmt.Sprintf("duplicate %s: already defined at %s", r.Key(), first.Pos), Key: r.Key()})
			continue
		}
		seen[r.Key()] = r
		out = append(out, r)
	}
	return out
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// loadStream decodes all documents of one stream, appending errors.
func loadStream(name string, r io.Reader, opts Options, errs *ErrorList) []*Resource {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		*errs = append(*errs, &Error{Pos: Position{File: name}, Msg: err.Error(), Class: ClassFile})
		return nil
	}
	if len(data) > maxFileBytes {
		*errs = append(*errs, &Error{Pos: Position{File: name}, Msg: fmt.Sprintf("file larger than %d bytes", maxFileBytes), Class: ClassFile})
		return nil
	}
	if bytes.IndexByte(data, 0) >= 0 {
		*errs = append(*errs, &Error{Pos: Position{File: name}, Msg: "binary file (NUL bytes), not YAML or JSON", Class: ClassFile})
		return nil
	}
	var out []*Resource
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// One budget for the whole stream: many small documents full of
	// aliases must not add up to unbounded work.
	budget := maxNodeVisits + nodesPerByte*len(data)
	for budget >= 0 {
		var doc yaml.Node
		err := safeDecode(dec, &doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			*errs = append(*errs, yamlError(name, err))
			break // the parser cannot resynchronise after a syntax error
		}
		w := &nodeWalker{file: name, errs: errs, budget: &budget}
		out = append(out, w.document(&doc, opts)...)
	}
	return out
}

// safeDecode guards against parser panics on malformed input.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("yaml: invalid document: %v", p)
		}
	}()
	return dec.Decode(n)
}

func yamlError(name string, err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Pos: Position{File: name, Line: line}, Msg: "invalid YAML: " + m[2], Class: ClassFile}
	}
	return &Error{Pos: Position{File: name}, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: "), Class: ClassFile}
}

// document decodes one YAML document: a resource, a List of them, or a
// top-level sequence of them (a JSON array).
func (w *nodeWalker) document(doc *yaml.Node, opts Options) []*Resource {
	n := w.visit(doc, "")
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = w.visit(n.Content[0], "")
		if n == nil {
			return nil
		}
	}
	switch {
	case isNull(n):
		return nil // empty document, e.g. after a trailing "---"
	case n.Kind == yaml.SequenceNode:
		var out []*Resource
		for _, item := range n.Content {
			out = append(out, w.fork().document(item, opts)...)
		}
		return out
	case n.Kind != yaml.MappingNode:
		w.errorf(n, "", "expected a Kubernetes-style object (apiVersion, kind, metadata, spec), got %s", kindName(n))
		return nil
	}
	top := map[string]*yaml.Node{}
	keys := map[string]*yaml.Node{}
	for _, p := range w.pairs(n, "", 0) {
		top[p[0].Value] = p[1]
		keys[p[0].Value] = p[0]
	}
	if skip, err := foreignDocument(top); skip {
		if err != "" {
			*w.errs = append(*w.errs, &Error{Pos: w.pos(n), Msg: err, Class: ClassFile})
		}
		return nil
	}
	apiVersion, okA := w.topString(top, "apiVersion", n)
	kind, okK := w.topString(top, "kind", n)
	if !okA || !okK {
		return nil
	}
	if items, ok := top["items"]; ok && (kind == "List" || strings.HasSuffix(kind, "List")) {
		items = w.visit(items, "items")
		if items == nil {
			return nil
		}
		if items.Kind != yaml.SequenceNode {
			w.errorf(items, "items", "expected list, got %s", kindName(items))
			return nil
		}
		var out []*Resource
		for _, item := range items.Content {
			out = append(out, w.fork().document(item, opts)...)
		}
		return out
	}
	if apiVersion == "v1" && kind == "ConfigMap" {
		return w.configMap(n, top, opts)
	}
	info, other := lookupKind(apiVersion, kind)
	if info == nil {
		if ignoredKinds[apiVersion+"/"+kind] {
			return nil
		}
		if what, ok := unsupportedKind(apiVersion, kind); ok {
			e := &Error{Pos: w.pos(top["kind"]), Path: "kind", Class: ClassUnsupported,
				Msg: fmt.Sprintf("%s (%s) is %s that Weft does not implement yet; the document is skipped", kind, apiVersion, what)}
			if opts.Unsupported != nil {
				opts.Unsupported(e)
			} else {
				*w.errs = append(*w.errs, e)
			}
			return nil
		}
		if other == nil && !istioGroup(apiVersion) {
			return nil // another tool's kind: skipped, as istioctl analyze does
		}
		if other != nil {
			w.errorf(top["apiVersion"], "apiVersion", "unsupported apiVersion %q for kind %s (use %s)", apiVersion, kind, other.apiVersion())
		} else {
			w.errorf(top["kind"], "kind", "unknown kind %q (apiVersion %q)", kind, apiVersion)
		}
		return nil
	}
	w.fields = map[string]Position{}
	res := &Resource{Kind: info.kind, APIVersion: apiVersion, Pos: w.pos(n), Fields: w.fields}
	for k, kn := range keys {
		w.record(k, kn)
	}
	before := len(*w.errs)
	defer w.stampKey(before, info.kind, top, opts)
	if info.newIstio == nil {
		obj, meta := newK8sObject(info.kind)
		w.decodeJSON(n, "", obj)
		res.Object, res.Meta = obj, meta
	} else {
		for k, kn := range keys {
			switch k {
			case "apiVersion", "kind", "metadata", "spec", "status":
			default:
				w.errorf(kn, k, "unknown field %q", k)
			}
		}
		obj, spec, meta := info.newIstio()
		if md, ok := top["metadata"]; ok {
			w.decodeJSON(md, "metadata", meta)
		}
		if sp, ok := top["spec"]; ok {
			w.decodeMessage(sp, spec.ProtoReflect(), "spec", 1)
		}
		res.Object, res.Spec, res.Meta = obj, spec, meta
	}
	if len(*w.errs) > before {
		return nil
	}
	return w.finish(res, info, opts, top)
}

// stampKey labels the errors of one document with the resource they
// belong to, read straight from the YAML so it works even when decoding
// failed.
func (w *nodeWalker) stampKey(from int, kind Kind, top map[string]*yaml.Node, opts Options) {
	if len(*w.errs) <= from {
		return
	}
	key := Key{Kind: kind, Namespace: opts.namespace()}
	if md := top["metadata"]; md != nil && md.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(md.Content); i += 2 {
			k, v := md.Content[i], md.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				continue
			}
			switch k.Value {
			case "name":
				key.Name = v.Value
			case "namespace":
				key.Namespace = v.Value
			}
		}
	}
	for _, e := range (*w.errs)[from:] {
		if e.Key == (Key{}) {
			e.Key = key
		}
	}
}

// fork returns a walker for a sibling document: same file and error list,
// its own field map, the shared budget.
func (w *nodeWalker) fork() *nodeWalker {
	return &nodeWalker{file: w.file, line0: w.line0, col0: w.col0, errs: w.errs, budget: w.budget}
}

// finish checks metadata and fills the Resource's identity.
func (w *nodeWalker) finish(res *Resource, info *kindInfo, opts Options, top map[string]*yaml.Node) []*Resource {
	meta := res.Meta
	if meta.Name == "" {
		at := top["metadata"]
		if at == nil {
			at = top["kind"]
		}
		w.errorf(at, "metadata.name", "missing metadata.name")
		return nil
	}
	if meta.Namespace == "" && info.kind != KindNamespace {
		meta.Namespace = opts.namespace()
	}
	res.Name, res.Namespace = meta.Name, meta.Namespace
	setTypeMeta(res, info)
	return []*Resource{res}
}

// setTypeMeta stamps the normalised apiVersion on the typed object, whose
// Go type is always the newest version.
func setTypeMeta(res *Resource, info *kindInfo) {
	group, version := splitAPIVersion(info.apiVersion())
	res.Object.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: version, Kind: string(info.kind)})
}

// topString reads a required top-level string such as apiVersion.
func (w *nodeWalker) topString(top map[string]*yaml.Node, key string, doc *yaml.Node) (string, bool) {
	n, ok := top[key]
	if !ok {
		w.errorf(doc, key, "missing %s", key)
		return "", false
	}
	n = w.visit(n, key)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Value == "" {
		w.errorf(n, key, "%s must be a non-empty string", key)
		return "", false
	}
	return n.Value, true
}

var jsonUnknownRE = regexp.MustCompile(`^json: unknown field "([^"]*)"`)

// decodeJSON decodes a node into a Kubernetes Go type through JSON, the
// way kubectl does, rejecting unknown fields. Positions for the error come
// from the recorded field map.
func (w *nodeWalker) decodeJSON(n *yaml.Node, path string, into any) {
	g, ok := w.generic(n, path, 1)
	if !ok {
		return
	}
	before := len(*w.errs)
	w.checkKubeFields(g, reflect.TypeOf(into), path)
	if len(*w.errs) > before {
		return
	}
	b, err := json.Marshal(g)
	if err != nil {
		w.errorf(n, path, "%v", err)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		w.jsonError(n, path, err)
	}
}

func (w *nodeWalker) jsonError(n *yaml.Node, path string, err error) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		p := joinPath(path, te.Field)
		w.add(w.findField(p, n), p, fmt.Sprintf("expected %s, got %s", te.Type, te.Value))
		return
	}
	if m := jsonUnknownRE.FindStringSubmatch(err.Error()); m != nil {
		p := joinPath(path, m[1])
		w.add(w.findField(p, n), p, fmt.Sprintf("unknown field %q", lastSegment(m[1])))
		return
	}
	w.errorf(n, path, "%s", strings.TrimPrefix(err.Error(), "json: "))
}

func (w *nodeWalker) add(pos Position, path, msg string) {
	*w.errs = append(*w.errs, &Error{Pos: pos, Path: path, Msg: msg})
}

// findField locates a dotted path as encoding/json reports it (no list
// indexes) among the recorded fields, preferring the earliest position.
func (w *nodeWalker) findField(p string, n *yaml.Node) Position {
	best := Position{}
	for k, pos := range w.fields {
		if stripIndexes(k) != p {
			continue
		}
		if best.Line == 0 || pos.Line < best.Line {
			best = pos
		}
	}
	if best.Line == 0 {
		return w.pos(n)
	}
	return best
}

var indexRE = regexp.MustCompile(`\[[^\]]*\]`)

func stripIndexes(p string) string { return indexRE.ReplaceAllString(p, "") }

func lastSegment(p string) string {
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[i+1:]
	}
	return p
}
