package memory

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "off": 0, "1024": 1024, "512B": 512, "64KiB": 64 << 10,
		"48MiB": 48 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
		if want > 0 {
			if back, _ := ParseBytes(FormatBytes(want)); back != want {
				t.Errorf("FormatBytes(%d) = %q does not read back", want, FormatBytes(want))
			}
		}
	}
	for _, bad := range []string{"", "-1", "12MB", "1.5GiB", "x", "99999999999TiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

func TestApply(t *testing.T) {
	old := Apply(Policy{GCPercent: 50, MemoryLimit: 256 << 20})
	defer Apply(old)
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Errorf("GOMEMLIMIT %d", got)
	}
	Apply(Policy{GCPercent: 100})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("no limit: GOMEMLIMIT %d", got)
	}
}
