// Package memtrim gives a sidecar's idle heap back to the system.
//
// Go keeps the heap it grew during a burst (a load spike, a flood of bad
// requests) mapped until later GCs and its slow background scavenger
// shrink it, which on an idle proxy can take minutes: nothing allocates,
// so no GC even finds the burst's garbage. A sidecar runs beside every pod
// and is judged by its RSS, so the proxy looks every second and, once a
// burst has ended (what it allocated since the last look fell under the
// threshold and under a quarter of what it allocated in the look before)
// while more than a few MiB of heap are mapped beyond what was live at the
// last GC, collects and returns the rest (debug.FreeOSMemory). Under
// steady load it never trims, however little each second allocates: that
// memory is in use, and a trim is a forced GC plus page faults to map the
// heap again, in the latency tail of the requests it meets (issue 17: at
// 1,000 requests/s a proxy allocated about 4.5 MB a second, under the
// threshold, and trimmed in the middle of the bench's load). A proxy that is
// idle (nothing but probes and timers: under a sixteenth of the threshold
// allocated per look) is trimmed tighter, down to a quarter of the
// threshold: the start-up's garbage (decoding the first config) is most of
// an idle sidecar's heap, and one GC of a few MiB costs about a
// millisecond.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultThreshold is how much reclaimable heap, and how little
// allocation per interval, make a trim worth it.
const DefaultThreshold = 4 << 20

var names = []string{
	"/memory/classes/heap/objects:bytes", // live and not yet collected
	"/memory/classes/heap/unused:bytes",  // mapped, in spans, unused
	"/memory/classes/heap/free:bytes",    // mapped, free, not released
	"/gc/heap/live:bytes",                // marked live by the last GC
	"/gc/heap/allocs:bytes",              // cumulative
}

type reading struct{ reclaimable, allocs uint64 }

func read() reading {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	v := make([]uint64, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	mapped := v[0] + v[1] + v[2]
	var r reading
	if mapped > v[3] {
		r.reclaimable = mapped - v[3]
	}
	r.allocs = v[4]
	return r
}

// Reclaimable is the heap mapped beyond what the last GC found live.
func Reclaimable() uint64 { return read().reclaimable }

// Trimmer decides, one look at a time, when to trim.
type Trimmer struct {
	Threshold uint64
	last      uint64 // cumulative allocs at the previous look
	prev      uint64 // allocated between the two looks before
	// floor is what the last trim could not return (objects left in
	// partly used spans): trimming again for it would return nothing.
	floor   uint64
	started bool
}

// Look trims when the process is idle (allocated less than Threshold/16
// since the previous look) and more than Threshold/4 is reclaimable beyond
// what the previous trim left, or when a burst just ended (it allocated
// less than Threshold, and less than a quarter of what it allocated in the
// look before) and more than Threshold is; it reports whether it trimmed.
// A steady rate under Threshold is load, not quiet: it never trims.
func (t *Trimmer) Look() bool {
	r := read()
	allocated := r.allocs - t.last
	idle := allocated < t.Threshold/16
	ended := allocated < t.Threshold && allocated < t.prev/4
	quiet := t.started && (idle || ended)
	if !t.started {
		allocated = 0 // since the process started: no look's rate
	}
	t.last, t.prev, t.started = r.allocs, allocated, true
	limit := t.Threshold
	if idle {
		limit = t.Threshold / 4
	}
	if !quiet || r.reclaimable <= t.floor+limit {
		return false
	}
	t.Trim()
	return true
}

// Trim collects and returns the freed heap now.
func (t *Trimmer) Trim() {
	debug.FreeOSMemory()
	after := read()
	t.last, t.prev, t.floor, t.started = after.allocs, 0, after.reclaimable, true
}

// Run looks every interval until ctx ends; interval <= 0 disables it.
// When burst (may be nil) is closed it trims at once, without waiting for
// quiet: the caller knows a burst's garbage is garbage (weft-proxy closes
// it when its first config is applied: decoding 1,000 services' xDS left
// 8 MiB that would otherwise stay resident a second or two longer).
func Run(ctx context.Context, interval time.Duration, threshold uint64, burst <-chan struct{}) {
	if interval <= 0 {
		return
	}
	tr := &Trimmer{Threshold: threshold}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-burst:
			burst = nil
			tr.Trim()
		case <-tk.C:
			tr.Look()
		}
	}
}
