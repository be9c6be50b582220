package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKubeFields walks a generic JSON value against a Kubernetes Go type
// and reports unknown fields and type mismatches with their path and
// position, which encoding/json alone cannot do. Types with their own
// JSON decoding (IntOrString, Quantity, Time) are left to encoding/json.
func (w *nodeWalker) checkKubeFields(v any, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeError(path, "object", v)
			return
		}
		fields := jsonFields(t)
		for k, val := range m {
			ft, ok := fields[k]
			child := joinPath(path, k)
			if !ok {
				w.add(w.posOrDoc(child), child, fmt.Sprintf("unknown field %q", k))
				continue
			}
			w.checkKubeFields(val, ft, child)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeError(path, "object", v)
			return
		}
		for k, val := range m {
			w.checkKubeFields(val, t.Elem(), path+"["+k+"]")
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			if _, ok := v.(string); !ok {
				w.typeError(path, "base64 string", v)
			}
			return
		}
		l, ok := v.([]any)
		if !ok {
			w.typeError(path, "list", v)
			return
		}
		for i, val := range l {
			w.checkKubeFields(val, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			w.typeError(path, "string", v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.typeError(path, "boolean", v)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, ok := v.(int64); !ok {
			w.typeError(path, "integer", v)
		}
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			w.typeError(path, "number", v)
		}
	}
}

func (w *nodeWalker) typeError(path, want string, got any) {
	w.add(w.posOrDoc(path), path, fmt.Sprintf("expected %s, got %s", want, genericKind(got)))
}

func (w *nodeWalker) posOrDoc(path string) Position {
	if p, ok := w.fields[path]; ok {
		return p
	}
	r := Resource{Fields: w.fields, Pos: Position{File: w.file}}
	return r.PosOf(path)
}

func genericKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "list"
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}

// jsonFields maps the JSON names of a struct's fields (including inlined
// embedded structs) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
