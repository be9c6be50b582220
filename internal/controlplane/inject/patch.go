package inject

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Patch is the RFC 6902 JSON patch that turns orig into mutated: one op
// per changed metadata map and per changed top-level spec field (an "add"
// replaces an existing member), in a fixed order.
func Patch(orig, mutated *corev1.Pod) ([]byte, error) {
	var ops []patchOp
	diff := func(prefix string, a, b any) error {
		ma, err := fields(a)
		if err != nil {
			return err
		}
		mb, err := fields(b)
		if err != nil {
			return err
		}
		var keys []string
		for k := range ma {
			keys = append(keys, k)
		}
		for k := range mb {
			if _, ok := ma[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			va, inA := ma[k]
			vb, inB := mb[k]
			path := prefix + "/" + escape(k)
			switch {
			case !inB:
				ops = append(ops, patchOp{Op: "remove", Path: path})
			case !inA || !bytes.Equal(va, vb):
				ops = append(ops, patchOp{Op: "add", Path: path, Value: vb})
			}
		}
		return nil
	}
	meta := func(p *corev1.Pod) map[string]any {
		return map[string]any{"labels": p.Labels, "annotations": p.Annotations}
	}
	if err := diff("/metadata", meta(orig), meta(mutated)); err != nil {
		return nil, err
	}
	if err := diff("/spec", orig.Spec, mutated.Spec); err != nil {
		return nil, err
	}
	return json.Marshal(ops)
}

// fields marshals v and splits it into its top-level members (empty maps
// and nil values are left out, as omitempty would).
func fields(v any) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, raw := range m {
		if s := string(raw); s == "null" || s == "{}" {
			delete(m, k)
		}
	}
	return m, nil
}

// escape is RFC 6901's escaping of a JSON pointer segment.
func escape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
