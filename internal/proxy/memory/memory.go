// Package memory is weft-proxy's Go memory policy (issue 17): the GC
// target (GOGC) and soft memory limit (GOMEMLIMIT) a sidecar runs with,
// settable by flag and environment (memtrim gives an idle proxy's freed
// heap back).
package memory

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// Policy is what Apply sets.
type Policy struct {
	// GCPercent is GOGC: the heap grows by this percentage of the live
	// heap before a collection (negative: off).
	GCPercent int
	// MemoryLimit is GOMEMLIMIT in bytes: a soft limit the GC works
	// harder to stay under (0: none).
	MemoryLimit int64
	// Target is a softer bound (0: none) that gives way to the live heap
	// (RunTarget).
	Target int64
}

// Apply sets the policy's GOGC and memory limit for the process and
// returns the ones it replaced (RunTarget applies the target).
func Apply(p Policy) (old Policy) {
	old.GCPercent = debug.SetGCPercent(p.GCPercent)
	limit := p.MemoryLimit
	if limit <= 0 {
		limit = math.MaxInt64
	}
	if prev := debug.SetMemoryLimit(limit); prev != math.MaxInt64 {
		old.MemoryLimit = prev
	}
	return old
}

func (p Policy) String() string {
	limit := "none"
	if p.MemoryLimit > 0 {
		limit = FormatBytes(p.MemoryLimit)
	}
	target := "none"
	if p.Target > 0 {
		target = FormatBytes(p.Target)
	}
	return fmt.Sprintf("gc-percent=%d memory-limit=%s memory-target=%s", p.GCPercent, limit, target)
}

// ParseBytes reads a size as GOMEMLIMIT spells it: a number with an
// optional B, KiB, MiB, GiB or TiB suffix; "0" and "off" mean none.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (a number with B, KiB, MiB, GiB or TiB, or off)", s)
	}
	return n * mult, nil
}

// FormatBytes spells n the way ParseBytes reads it.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
