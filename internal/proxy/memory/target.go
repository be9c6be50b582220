package memory

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// MinHeadroom is the least the heap may grow between two collections
// under a memory target: however far live memory outgrows the target, the
// GC runs at most once per MinHeadroom allocated, so a proxy with more
// connections than the target fits pays a bounded GC cost instead of
// collecting back to back (what a plain GOMEMLIMIT below the live heap
// does, up to the runtime's 50 % GC CPU cap).
const MinHeadroom = 4 << 20

// targetNames are the runtime metrics a look reads, in this order.
var targetNames = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
}

// targetLimit is the memory limit for a target given the runtime's
// memory now (values in targetNames' order) and the operator's limit
// (0: none).
func targetLimit(target, hard int64, v []uint64) int64 {
	total, released, objects, unused, free, live := v[0], v[1], v[2], v[3], v[4], v[5]
	heap := objects + unused + free
	var nonHeap uint64 // stacks, metadata, other: what the heap goal leaves out
	if total > released+heap {
		nonHeap = total - released - heap
	}
	limit := max(target, int64(nonHeap+live)+MinHeadroom)
	if hard > 0 {
		limit = min(limit, hard)
	}
	return limit
}

// sentinel is garbage from the moment it is made: its cleanup runs after
// the next collection. Large enough, and holding a pointer, so that it is
// never one of the tiny allocations a cleanup may not run for.
type sentinel struct {
	_ *byte
	_ [16]byte
}

// targeter sets the memory limit after each collection.
type targeter struct {
	ctx          context.Context
	target, hard int64
	samples      []metrics.Sample
	values       []uint64
	cur          int64
}

// RunTarget keeps the Go runtime's memory near target, a soft bound (as
// GOMEMLIMIT counts memory: heap, stacks, runtime metadata; not the
// binary's mapped pages), until ctx ends; target <= 0 does nothing. After
// every collection it sets the runtime's memory limit to the larger of
// target and what is live plus MinHeadroom, never above hard (the
// operator's --memory-limit; 0: none). GOGC still decides while the heap
// is small: the target binds only when GOGC's headroom (as much again as
// the live heap and stacks) would take the process past it, as when many
// requests are in flight at once. Issue 17: at the bench's 200-connection
// cell GOGC=100 let the heap grow to twice its 10-12 MB live size.
func RunTarget(ctx context.Context, target, hard int64) {
	if target <= 0 {
		return
	}
	t := &targeter{ctx: ctx, target: target, hard: hard,
		samples: make([]metrics.Sample, len(targetNames)), values: make([]uint64, len(targetNames))}
	for i, n := range targetNames {
		t.samples[i].Name = n
	}
	t.adjust()
	t.arm()
}

func (t *targeter) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *targeter) { t.afterGC() }, t)
}

func (t *targeter) afterGC() {
	if t.ctx.Err() != nil {
		limit := t.hard
		if limit <= 0 {
			limit = math.MaxInt64
		}
		debug.SetMemoryLimit(limit)
		return
	}
	t.adjust()
	t.arm()
}

// adjust sets the limit for the memory in use now. Rounded to 256 KiB
// so that small changes of the live heap do not reset it every cycle.
func (t *targeter) adjust() {
	metrics.Read(t.samples)
	for i := range t.samples {
		t.values[i] = 0
		if t.samples[i].Value.Kind() == metrics.KindUint64 {
			t.values[i] = t.samples[i].Value.Uint64()
		}
	}
	limit := targetLimit(t.target, t.hard, t.values)
	if limit = (limit + 256<<10 - 1) &^ (256<<10 - 1); t.hard > 0 {
		limit = min(limit, t.hard)
	}
	if limit != t.cur {
		debug.SetMemoryLimit(limit)
		t.cur = limit
	}
}
