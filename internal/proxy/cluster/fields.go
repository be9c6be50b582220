package cluster

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// allowOnly fails when m has a field set that is not in allowed, so that
// weft-proxy NACKs configuration it would otherwise silently ignore.
func allowOnly(m proto.Message, path string, allowed ...string) error {
	if m == nil {
		return nil
	}
	var err error
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			err = fmt.Errorf("%s%s: not supported by weft-proxy", path, fd.Name())
			return false
		}
		return true
	})
	return err
}

func durOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

func u32Or(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func u64Or(v *wrapperspb.UInt64Value, def uint64) uint64 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
