package bootstrap

import (
	"io"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/memory"
)

// The Go memory policy: flags, then WEFT_ variables, then Go's own GOGC and
// GOMEMLIMIT, then GOGC=100 and no limit.
func TestMemoryPolicyFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want memory.Policy
	}{
		{"defaults", nil, nil, memory.Policy{GCPercent: 100}},
		{"go env", nil, map[string]string{"GOGC": "50", "GOMEMLIMIT": "64MiB"}, memory.Policy{GCPercent: 50, MemoryLimit: 64 << 20}},
		{"weft env wins", nil, map[string]string{"GOGC": "50", "WEFT_GC_PERCENT": "80", "WEFT_MEMORY_LIMIT": "1GiB"},
			memory.Policy{GCPercent: 80, MemoryLimit: 1 << 30}},
		{"flags win", []string{"--gc-percent", "off", "--memory-limit", "100MiB"}, map[string]string{"WEFT_GC_PERCENT": "80"},
			memory.Policy{GCPercent: -1, MemoryLimit: 100 << 20}},
		{"target", []string{"--memory-target", "20MiB"}, nil, memory.Policy{GCPercent: 100, Target: 20 << 20}},
		{"target env", nil, map[string]string{"WEFT_MEMORY_TARGET": "24MiB"}, memory.Policy{GCPercent: 100, Target: 24 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("sidecar", tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.Memory != tc.want {
				t.Errorf("got %+v, want %+v", c.Memory, tc.want)
			}
		})
	}
	for _, args := range [][]string{{"--gc-percent", "-5"}, {"--gc-percent", "lots"}, {"--memory-limit", "12MB"}, {"--memory-target", "lots"}} {
		_, err := Parse("sidecar", args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%v: error %v does not name the flag", args, err)
		}
	}
}
