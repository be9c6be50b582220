// Package xdsfield holds weft-proxy's one rule for config it does not
// implement: every compiler names the fields of an xDS message it reads, and
// a message with any other field set, or with fields unknown to this build's
// schema, is NACKed with an error naming the field (docs/architecture.md,
// "xDS v3 over ADS"). Silently ignoring a field would make the proxy do
// something other than what the control plane asked for.
package xdsfield

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Check returns an error naming the first field set on m that is not in
// allowed (proto field names, e.g. "idle_timeout"), or reporting fields
// unknown to this build's schema. A nil m passes. path locates m in the
// resource and prefixes the field in the error: Check(m, "route.retry_policy",
// "num_retries") reports `route.retry_policy.per_try_timeout: not supported by
// weft-proxy`; a named resource reads `listener "web".name: ...`. Leading and
// trailing dots on path are ignored.
func Check(m proto.Message, path string, allowed ...string) error {
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
	path = strings.Trim(path, ".")
	if bad != "" {
		if path != "" {
			bad = path + "." + bad
		}
		return fmt.Errorf("%s: not supported by weft-proxy", bad)
	}
	if len(r.GetUnknown()) > 0 {
		if path == "" {
			path = string(r.Descriptor().Name())
		}
		return fmt.Errorf("%s: unknown fields (newer xDS schema than weft-proxy supports)", path)
	}
	return nil
}
