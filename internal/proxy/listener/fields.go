package listener

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// AllowOnly returns an error naming the first field set in m that is not
// in allowed, or any field unknown to this build's schema. weft-proxy NACKs
// config it does not implement instead of silently ignoring it.
func AllowOnly(m proto.Message, path string, allowed ...string) error {
	if m == nil {
		return nil
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return nil
	}
	var bad string
	r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = string(fd.Name())
			return false
		}
		return true
	})
	if bad != "" {
		return fmt.Errorf("%s: field %s is not supported by weft-proxy", path, bad)
	}
	if len(r.GetUnknown()) > 0 {
		return fmt.Errorf("%s: unknown fields (newer xDS schema than weft-proxy supports)", path)
	}
	return nil
}
