package memtrim

import (
	"runtime/debug"
	"testing"
)

var sink [][]byte

func burst() {
	// No GC during the burst: its garbage stays mapped, as on a proxy that
	// goes idle right after one.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for i := 0; i < 64; i++ {
		sink = append(sink, make([]byte, 256<<10))
	}
	sink = nil // 16 MiB of garbage no GC has seen yet
}

// After a burst the first look only notes the allocation (the process is
// busy); once quiet, a look trims what the burst left; with nothing left,
// it does nothing.
func TestTrimAfterBurstOnceQuiet(t *testing.T) {
	tr := &Trimmer{Threshold: DefaultThreshold}
	tr.Look()
	burst()
	if tr.Look() {
		t.Fatal("trimmed while allocating")
	}
	if r := Reclaimable(); r <= 8<<20 {
		t.Fatalf("burst left only %d B reclaimable", r)
	}
	if !tr.Look() {
		t.Fatalf("quiet with %d B reclaimable: no trim", Reclaimable())
	}
	if r := Reclaimable(); r > DefaultThreshold {
		t.Errorf("%d B reclaimable after a trim", r)
	}
	if tr.Look() {
		t.Error("trimmed again with nothing to return")
	}
}
