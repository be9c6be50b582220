package memory

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestTargetLimit(t *testing.T) {
	const mib = 1 << 20
	// total, released, objects, unused, free, live: 4 MiB outside the heap.
	small := []uint64{20 * mib, 2 * mib, 10 * mib, 1 * mib, 3 * mib, 6 * mib}
	big := []uint64{40 * mib, 0, 30 * mib, 2 * mib, 4 * mib, 25 * mib}
	for _, tc := range []struct {
		name         string
		target, hard int64
		v            []uint64
		want         int64
	}{
		{"target binds", 20 * mib, 0, small, 20 * mib},
		{"live outgrows it: live, the rest, headroom", 20 * mib, 0, big, 4*mib + 25*mib + MinHeadroom},
		{"never above the operator's limit", 20 * mib, 30 * mib, big, 30 * mib},
		{"a target above the operator's limit", 64 * mib, 30 * mib, small, 30 * mib},
	} {
		if got := targetLimit(tc.target, tc.hard, tc.v); got != tc.want {
			t.Errorf("%s: got %d MiB, want %d MiB", tc.name, got/mib, tc.want/mib)
		}
	}
}

// RunTarget sets the limit at once and after every collection, follows a
// live heap that outgrows the target, and lifts the limit when it stops.
func TestRunTarget(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	waitFor := func(what string, ok func(int64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(limit()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: limit %d", what, limit())
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	const target = 8 << 20
	RunTarget(ctx, target, 0)
	waitFor("the target", func(l int64) bool { return l >= target && l < 64<<20 })

	live := make([]byte, 64<<20)
	for i := range live {
		live[i] = 1
	}
	waitFor("the live heap plus headroom", func(l int64) bool { return l >= 64<<20+MinHeadroom })
	runtime.KeepAlive(live)

	cancel()
	waitFor("no limit once stopped", func(l int64) bool { return l == math.MaxInt64 })
}
