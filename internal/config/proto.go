package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"
)

// decodeMessage fills m from n, walking the YAML against m's protobuf
// descriptor. It accepts what Istio accepts (jsonpb semantics: JSON or
// proto field names, enum names or numbers, Go-style durations such as
// "3m") and reports every unknown field, wrong type and bad enum value
// with its path and position instead of stopping at the first.
func (w *nodeWalker) decodeMessage(n *yaml.Node, m protoreflect.Message, path string, depth int) {
	n = w.visit(n, path)
	if n == nil || isNull(n) {
		return
	}
	if depth > maxDepth {
		w.errorf(n, path, "nesting too deep")
		return
	}
	if w.wellKnown(n, m, path, depth) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "expected object, got %s", kindName(n))
		return
	}
	fields := m.Descriptor().Fields()
	oneofs := map[protoreflect.FullName]string{}
	for _, p := range w.pairs(n, path, depth) {
		k, v := p[0], p[1]
		fd := fields.ByJSONName(k.Value)
		if fd == nil {
			fd = fields.ByTextName(k.Value)
		}
		if fd == nil {
			w.errorf(k, joinPath(path, k.Value), "unknown field %q", k.Value)
			continue
		}
		child := joinPath(path, fd.JSONName())
		w.record(child, k)
		if vv := w.visit(v, child); vv == nil || isNull(vv) {
			continue // null means unset, as in protojson
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if prev, ok := oneofs[od.FullName()]; ok {
				w.errorf(k, child, "only one of %s may be set (already set: %q)", oneofNames(od), prev)
				continue
			}
			oneofs[od.FullName()] = fd.JSONName()
		}
		switch {
		case fd.IsMap():
			w.decodeMap(v, m, fd, child, depth+1)
		case fd.IsList():
			w.decodeList(v, m, fd, child, depth+1)
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			w.decodeMessage(v, m.Mutable(fd).Message(), child, depth+1)
		default:
			if val, ok := w.decodeScalar(v, fd, child); ok {
				m.Set(fd, val)
			}
		}
	}
}

func oneofNames(od protoreflect.OneofDescriptor) string {
	var names []string
	for i := 0; i < od.Fields().Len(); i++ {
		names = append(names, od.Fields().Get(i).JSONName())
	}
	return strings.Join(names, ", ")
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (w *nodeWalker) decodeList(n *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string, depth int) {
	n = w.visit(n, path)
	if n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.errorf(n, path, "expected list, got %s", kindName(n))
		return
	}
	// A list replaces whatever a default held, as in Istio's mesh config merge.
	list := m.NewField(fd).List()
	for i, item := range n.Content {
		child := fmt.Sprintf("%s[%d]", path, i)
		w.record(child, item)
		if fd.Kind() == protoreflect.MessageKind {
			el := list.NewElement()
			w.decodeMessage(item, el.Message(), child, depth+1)
			list.Append(el)
			continue
		}
		if it := w.visit(item, child); it == nil {
			continue
		}
		if val, ok := w.decodeScalar(item, fd, child); ok {
			list.Append(val)
		}
	}
	m.Set(fd, protoreflect.ValueOfList(list))
}

func (w *nodeWalker) decodeMap(n *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string, depth int) {
	n = w.visit(n, path)
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "expected object, got %s", kindName(n))
		return
	}
	mp := m.NewField(fd).Map()
	kd, vd := fd.MapKey(), fd.MapValue()
	for _, p := range w.pairs(n, path, depth) {
		k, v := p[0], p[1]
		child := path + "[" + k.Value + "]"
		w.record(child, k)
		key, ok := w.mapKey(k, kd, child)
		if !ok {
			continue
		}
		if vd.Kind() == protoreflect.MessageKind {
			val := mp.NewValue()
			w.decodeMessage(v, val.Message(), child, depth+1)
			mp.Set(key, val)
			continue
		}
		vv := w.visit(v, child)
		if vv == nil {
			continue
		}
		if isNull(vv) {
			w.errorf(vv, child, "map value must not be null")
			continue
		}
		if val, ok := w.decodeScalar(vv, vd, child); ok {
			mp.Set(key, val)
		}
	}
	m.Set(fd, protoreflect.ValueOfMap(mp))
}

func (w *nodeWalker) mapKey(k *yaml.Node, kd protoreflect.FieldDescriptor, path string) (protoreflect.MapKey, bool) {
	switch kd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(k.Value).MapKey(), true
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(k.Value)
		if err != nil {
			w.errorf(k, path, "invalid boolean map key %q", k.Value)
			return protoreflect.MapKey{}, false
		}
		return protoreflect.ValueOfBool(b).MapKey(), true
	}
	// Integer keys: decode as the scalar would.
	v, ok := w.intValue(k, kd, path, true)
	if !ok {
		return protoreflect.MapKey{}, false
	}
	return v.MapKey(), true
}

// decodeScalar converts a scalar node into a field value of fd's kind.
func (w *nodeWalker) decodeScalar(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (protoreflect.Value, bool) {
	n = w.visit(n, path)
	if n == nil {
		return protoreflect.Value{}, false
	}
	want := scalarKindName(fd)
	if n.Kind != yaml.ScalarNode {
		w.errorf(n, path, "expected %s, got %s", want, kindName(n))
		return protoreflect.Value{}, false
	}
	tag := n.ShortTag()
	switch fd.Kind() {
	case protoreflect.StringKind:
		if tag != "!!str" && tag != "!!timestamp" {
			w.errorf(n, path, "expected string, got %s (quote the value)", kindName(n))
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfString(n.Value), true
	case protoreflect.BytesKind:
		b, err := base64.StdEncoding.DecodeString(n.Value)
		if err != nil {
			if b, err = base64.URLEncoding.DecodeString(n.Value); err != nil {
				w.errorf(n, path, "expected base64 bytes")
				return protoreflect.Value{}, false
			}
		}
		return protoreflect.ValueOfBytes(b), true
	case protoreflect.BoolKind:
		if tag != "!!bool" {
			w.errorf(n, path, "expected boolean, got %s", kindName(n))
			return protoreflect.Value{}, false
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		return protoreflect.ValueOfBool(b), true
	case protoreflect.EnumKind:
		return w.enumValue(n, fd, path)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		var f float64
		var err error
		switch tag {
		case "!!int", "!!float":
			f, err = parseYAMLFloat(n.Value)
			if tag == "!!int" {
				var i int64
				i, err = parseYAMLInt(n.Value)
				f = float64(i)
			}
		case "!!str":
			switch n.Value {
			case "NaN":
				f = math.NaN()
			case "Infinity":
				f = math.Inf(1)
			case "-Infinity":
				f = math.Inf(-1)
			default:
				f, err = strconv.ParseFloat(n.Value, 64)
			}
		default:
			err = fmt.Errorf("got %s", kindName(n))
		}
		if err != nil {
			w.errorf(n, path, "expected number, got %q", n.Value)
			return protoreflect.Value{}, false
		}
		if fd.Kind() == protoreflect.FloatKind {
			if !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
				w.errorf(n, path, "number %q out of range", n.Value)
				return protoreflect.Value{}, false
			}
			return protoreflect.ValueOfFloat32(float32(f)), true
		}
		return protoreflect.ValueOfFloat64(f), true
	}
	return w.intValue(n, fd, path, false)
}

func scalarKindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "string"
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.EnumKind:
		return "enum string"
	case protoreflect.BytesKind:
		return "base64 string"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "number"
	case protoreflect.MessageKind:
		return "object"
	}
	return "integer"
}

// intValue parses every integer kind, with range checks. Like protojson, a
// quoted integer is accepted (64-bit values are strings in JSON).
func (w *nodeWalker) intValue(n *yaml.Node, fd protoreflect.FieldDescriptor, path string, key bool) (protoreflect.Value, bool) {
	tag := n.ShortTag()
	if !key && tag != "!!int" && tag != "!!str" && tag != "!!float" {
		w.errorf(n, path, "expected integer, got %s", kindName(n))
		return protoreflect.Value{}, false
	}
	s := strings.ReplaceAll(n.Value, "_", "")
	var bits int
	signed := true
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		bits = 32
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		bits = 64
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		bits, signed = 32, false
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		bits, signed = 64, false
	default:
		w.errorf(n, path, "unsupported field kind %s", fd.Kind())
		return protoreflect.Value{}, false
	}
	if tag == "!!float" {
		// 1e3 is an integer in JSON if it has no fraction.
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			w.errorf(n, path, "expected integer, got %q", n.Value)
			return protoreflect.Value{}, false
		}
		s = strconv.FormatInt(int64(f), 10)
	}
	if signed {
		i, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			w.errorf(n, path, "invalid %d-bit integer %q", bits, n.Value)
			return protoreflect.Value{}, false
		}
		if bits == 32 {
			return protoreflect.ValueOfInt32(int32(i)), true
		}
		return protoreflect.ValueOfInt64(i), true
	}
	u, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		w.errorf(n, path, "invalid unsigned %d-bit integer %q", bits, n.Value)
		return protoreflect.Value{}, false
	}
	if bits == 32 {
		return protoreflect.ValueOfUint32(uint32(u)), true
	}
	return protoreflect.ValueOfUint64(u), true
}

func (w *nodeWalker) enumValue(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (protoreflect.Value, bool) {
	ed := fd.Enum()
	if ed.FullName() == "google.protobuf.NullValue" {
		return protoreflect.ValueOfEnum(0), true
	}
	if n.ShortTag() == "!!int" {
		i, err := strconv.ParseInt(n.Value, 10, 32)
		if err == nil && ed.Values().ByNumber(protoreflect.EnumNumber(i)) != nil {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(i)), true
		}
	} else if ev := ed.Values().ByName(protoreflect.Name(n.Value)); ev != nil {
		return protoreflect.ValueOfEnum(ev.Number()), true
	}
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	w.errorf(n, path, "unknown value %q, must be one of %s", n.Value, strings.Join(names, ", "))
	return protoreflect.Value{}, false
}

// wellKnown decodes the google.protobuf types that have a special JSON
// form. It reports whether m was one of them.
func (w *nodeWalker) wellKnown(n *yaml.Node, m protoreflect.Message, path string, depth int) bool {
	name := m.Descriptor().FullName()
	if name.Parent() != "google.protobuf" {
		return false
	}
	switch name.Name() {
	case "Duration":
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			w.errorf(n, path, "expected duration string such as \"1s\" or \"100ms\", got %s", kindName(n))
			return true
		}
		// Istio's jsonpb uses time.ParseDuration, so "3m" and "1h" are valid.
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			w.errorf(n, path, "invalid duration %q", n.Value)
			return true
		}
		fds := m.Descriptor().Fields()
		m.Set(fds.ByName("seconds"), protoreflect.ValueOfInt64(int64(d/time.Second)))
		m.Set(fds.ByName("nanos"), protoreflect.ValueOfInt32(int32(d%time.Second)))
	case "Timestamp":
		t, err := time.Parse(time.RFC3339Nano, n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			w.errorf(n, path, "expected RFC 3339 timestamp")
			return true
		}
		fds := m.Descriptor().Fields()
		m.Set(fds.ByName("seconds"), protoreflect.ValueOfInt64(t.Unix()))
		m.Set(fds.ByName("nanos"), protoreflect.ValueOfInt32(int32(t.Nanosecond())))
	case "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
		"UInt32Value", "BoolValue", "StringValue", "BytesValue":
		fd := m.Descriptor().Fields().ByName("value")
		if v, ok := w.decodeScalar(n, fd, path); ok {
			m.Set(fd, v)
		}
	case "Struct", "Value", "ListValue":
		g, ok := w.generic(n, path, depth)
		if !ok {
			return true
		}
		var src proto.Message
		var err error
		switch name.Name() {
		case "Struct":
			mp, isMap := g.(map[string]any)
			if !isMap {
				w.errorf(n, path, "expected object, got %s", kindName(n))
				return true
			}
			src, err = structpb.NewStruct(mp)
		case "ListValue":
			l, isList := g.([]any)
			if !isList {
				w.errorf(n, path, "expected list, got %s", kindName(n))
				return true
			}
			src, err = structpb.NewList(l)
		default:
			src, err = structpb.NewValue(g)
		}
		if err != nil {
			w.errorf(n, path, "%v", err)
			return true
		}
		proto.Merge(m.Interface(), src)
	case "Empty":
		if n.Kind != yaml.MappingNode || len(n.Content) != 0 {
			w.errorf(n, path, "expected empty object {}")
		}
	default:
		w.errorf(n, path, "%s is not supported", name)
	}
	return true
}
