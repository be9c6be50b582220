package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits that keep hostile input from exhausting memory or time. yaml.v3
// keeps aliases as references in the node tree; expanding them is where a
// "billion laughs" document blows up, so every node visit is counted.
const (
	maxFileBytes  = 16 << 20
	maxNodeVisits = 1 << 16 // per stream, plus nodesPerByte for each input byte
	nodesPerByte  = 4       // a node takes at least two bytes and is visited at most twice
	maxDepth      = 200
)

// nodeWalker holds what every walk of one document shares: the file name,
// the error list, the field positions and the visit budget.
type nodeWalker struct {
	file   string
	line0  int // added to every line (embedded documents such as ConfigMap data.mesh)
	col0   int
	errs   *ErrorList
	fields map[string]Position
	budget *int // node visits left for the whole stream, shared by its documents
	broke  bool // budget exhausted; reported once
}

func (w *nodeWalker) pos(n *yaml.Node) Position {
	if n == nil || n.Line == 0 {
		return Position{File: w.file}
	}
	col := n.Column
	if w.line0 > 0 || w.col0 > 0 {
		col += w.col0
	}
	return Position{File: w.file, Line: n.Line + w.line0, Column: col}
}

func (w *nodeWalker) errorf(n *yaml.Node, path, format string, args ...any) {
	*w.errs = append(*w.errs, &Error{Pos: w.pos(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (w *nodeWalker) record(path string, n *yaml.Node) {
	if w.fields == nil || path == "" {
		return
	}
	if _, ok := w.fields[path]; !ok {
		w.fields[path] = w.pos(n)
	}
}

// visit charges one node against the budget and follows aliases. It
// returns nil once the budget is gone.
func (w *nodeWalker) visit(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			w.errorf(n, path, "alias chain too long")
			return nil
		}
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	*w.budget--
	if *w.budget < 0 {
		if !w.broke {
			w.broke = true
			w.errorf(n, path, "document too large or too many aliases (node limit reached)")
		}
		return nil
	}
	return n
}

// pairs returns a mapping's key/value pairs with YAML merge keys ("<<")
// applied: explicit keys win over merged ones, later merges lose to earlier
// ones, as the YAML merge spec says. Duplicate explicit keys are errors.
func (w *nodeWalker) pairs(n *yaml.Node, path string, depth int) [][2]*yaml.Node {
	if depth > maxDepth {
		w.errorf(n, path, "nesting too deep")
		return nil
	}
	var own, merged [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			v = w.visit(v, path)
			if v == nil {
				continue
			}
			switch v.Kind {
			case yaml.MappingNode:
				merged = append(merged, w.pairs(v, path, depth+1)...)
			case yaml.SequenceNode:
				for _, item := range v.Content {
					if item = w.visit(item, path); item != nil && item.Kind == yaml.MappingNode {
						merged = append(merged, w.pairs(item, path, depth+1)...)
					} else if item != nil {
						w.errorf(item, path, "merge key needs a mapping")
					}
				}
			default:
				w.errorf(v, path, "merge key needs a mapping")
			}
			continue
		}
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			w.errorf(k, path, "mapping key must be a string")
			continue
		}
		if seen[key] {
			w.errorf(k, joinPath(path, key), "duplicate field %q", key)
			continue
		}
		seen[key] = true
		own = append(own, [2]*yaml.Node{k, v})
	}
	for _, p := range merged {
		if !seen[p[0].Value] {
			seen[p[0].Value] = true
			own = append(own, p)
		}
	}
	return own
}

// generic converts a node into plain Go values (map[string]any, []any,
// string, int64, float64, bool, nil) for JSON-based decoding, recording
// field positions under path.
func (w *nodeWalker) generic(n *yaml.Node, path string, depth int) (any, bool) {
	n = w.visit(n, path)
	if n == nil {
		return nil, false
	}
	if depth > maxDepth {
		w.errorf(n, path, "nesting too deep")
		return nil, false
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, true
		}
		return w.generic(n.Content[0], path, depth+1)
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for _, p := range w.pairs(n, path, depth) {
			child := joinPath(path, p[0].Value)
			w.record(child, p[0])
			v, vok := w.generic(p[1], child, depth+1)
			ok = ok && vok
			out[p[0].Value] = v
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			child := fmt.Sprintf("%s[%d]", path, i)
			w.record(child, item)
			v, vok := w.generic(item, child, depth+1)
			ok = ok && vok
			out = append(out, v)
		}
		return out, ok
	case yaml.ScalarNode:
		return w.scalar(n, path)
	}
	w.errorf(n, path, "unsupported YAML node")
	return nil, false
}

// scalar resolves a plain scalar the way YAML 1.2's core schema (and
// yaml.v3) does: tagged ints, floats, bools and nulls, everything else a
// string.
func (w *nodeWalker) scalar(n *yaml.Node, path string) (any, bool) {
	switch n.ShortTag() {
	case "!!null":
		return nil, true
	case "!!bool":
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err != nil {
			w.errorf(n, path, "invalid boolean %q", n.Value)
			return nil, false
		}
		return b, true
	case "!!int":
		if i, err := parseYAMLInt(n.Value); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			w.errorf(n, path, "invalid integer %q", n.Value)
			return nil, false
		}
		return f, true
	case "!!float":
		f, err := parseYAMLFloat(n.Value)
		if err != nil {
			w.errorf(n, path, "invalid number %q", n.Value)
			return nil, false
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			w.errorf(n, path, "number %q is not representable in JSON", n.Value)
			return nil, false
		}
		return f, true
	}
	return n.Value, true
}

func parseYAMLInt(s string) (int64, error) {
	s = strings.ReplaceAll(s, "_", "")
	switch {
	case strings.HasPrefix(s, "0o"):
		return strconv.ParseInt(s[2:], 8, 64)
	case strings.HasPrefix(s, "-0o"):
		i, err := strconv.ParseInt(s[3:], 8, 64)
		return -i, err
	}
	return strconv.ParseInt(s, 0, 64)
}

func parseYAMLFloat(s string) (float64, error) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "integer"
		case "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		case "!!null":
			return "null"
		}
		return "string"
	}
	return "node"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
