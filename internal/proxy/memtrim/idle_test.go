package memtrim

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

// garbage leaves n bytes no GC has seen yet.
func garbage(n int) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for i := 0; i < n/(64<<10); i++ {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil
}

// Garbage under the threshold stays while the process allocates, and is
// returned once it is idle; what a trim could not return never triggers
// another.
func TestIdleTrimsSmallGarbage(t *testing.T) {
	tr := &Trimmer{Threshold: DefaultThreshold}
	tr.Look()
	burst()
	tr.Look()
	if !tr.Look() {
		t.Fatalf("quiet with %d B reclaimable: no trim", Reclaimable())
	}
	if tr.Look() {
		t.Fatal("idle right after a trim: trimmed again")
	}
	garbage(2 << 20) // over Threshold/4, under Threshold
	if tr.Look() {
		t.Fatal("trimmed 2 MiB while allocating (2 MiB since the last look)")
	}
	if !tr.Look() {
		t.Fatalf("idle with %d B reclaimable (floor %d): no trim", Reclaimable(), tr.floor)
	}
	for i := 0; i < 3; i++ {
		if tr.Look() {
			t.Fatalf("look %d: trimmed again with nothing to return", i)
		}
	}
}

// Run trims as soon as the caller says a burst ended, however long its
// interval.
func TestRunTrimsWhenBurstEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	burst()
	if r := Reclaimable(); r <= 8<<20 {
		t.Fatalf("burst left only %d B reclaimable", r)
	}
	ended := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Hour, DefaultThreshold, ended)
	}()
	close(ended)
	deadline := time.Now().Add(10 * time.Second)
	for Reclaimable() > DefaultThreshold {
		if time.Now().After(deadline) {
			t.Fatalf("%d B reclaimable 10 s after the burst ended", Reclaimable())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
