package route

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// CheckFields returns an error naming the first field set on m that is not in
// allowed. weft-proxy implements a subset of Envoy's API and must NACK what it
// would otherwise silently ignore (docs/architecture.md, decision 2). path prefixes the
// field name in the error, e.g. `virtual_hosts["web"].routes[2].match`.
func CheckFields(m proto.Message, path string, allowed ...string) error {
	if m == nil {
		return nil
	}
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name := string(fd.Name())
		for _, a := range allowed {
			if a == name {
				return true
			}
		}
		bad = name
		return false
	})
	if bad != "" {
		return fmt.Errorf("%s.%s: field not supported by weft-proxy", strings.TrimPrefix(path, "."), bad)
	}
	return nil
}
