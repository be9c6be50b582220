package xdsfield

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCheck(t *testing.T) {
	unknown := &wrapperspb.UInt32Value{}
	unknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	var typedNil *durationpb.Duration
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"allowed", Check(&durationpb.Duration{Seconds: 1}, "idle_timeout", "seconds", "nanos"), ""},
		{"unset fields pass", Check(&durationpb.Duration{}, "idle_timeout"), ""},
		{"nil", Check(nil, "x"), ""},
		{"typed nil", Check(typedNil, "x"), ""},
		{"set and not allowed", Check(&durationpb.Duration{Seconds: 1, Nanos: 2}, "route.timeout", "seconds"), "route.timeout.nanos: not supported by weft-proxy"},
		{"dots trimmed", Check(&durationpb.Duration{Nanos: 2}, ".route.timeout.", "seconds"), "route.timeout.nanos: not supported by weft-proxy"},
		{"after an index", Check(&durationpb.Duration{Nanos: 2}, "routes[2]"), "routes[2].nanos: not supported"},
		{"after a name", Check(&durationpb.Duration{Nanos: 2}, `listener "web"`), `listener "web".nanos: not supported`},
		{"no path", Check(&durationpb.Duration{Nanos: 2}, ""), "nanos: not supported by weft-proxy"},
		{"unknown field", Check(unknown, "max_requests", "value"), "max_requests: unknown fields"},
		{"unknown field no path", Check(unknown, "", "value"), "UInt32Value: unknown fields"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				if c.err != nil {
					t.Fatalf("unexpected error: %v", c.err)
				}
				return
			}
			if c.err == nil || !strings.HasPrefix(c.err.Error(), c.want) {
				t.Fatalf("error = %v, want prefix %q", c.err, c.want)
			}
		})
	}
}
