package registry

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeTimers lets the test fire grace timers by hand.
type fakeTimers struct{ fns []func() }

func (f *fakeTimers) after(_ time.Duration, fn func()) *time.Timer {
	f.fns = append(f.fns, fn)
	return time.NewTimer(time.Hour) // only Stop is called on it
}

func TestAutoGracePeriod(t *testing.T) {
	var changes atomic.Int32
	a := NewAuto(5*time.Second, func() { changes.Add(1) })
	ft := &fakeTimers{}
	a.after = ft.after
	w := &Workload{Name: "r", Namespace: "default", Address: "127.0.10.1", Source: SourceProxy}

	a.Connect("p1", w)
	if len(a.Workloads()) != 1 || changes.Load() != 1 {
		t.Fatalf("after connect: %d workloads, %d changes", len(a.Workloads()), changes.Load())
	}
	a.Connect("p1", w) // second stream, same workload: no change
	if changes.Load() != 1 {
		t.Fatalf("identical reconnect reported a change")
	}
	a.Disconnect("p1")
	a.Disconnect("p1")
	if len(ft.fns) != 1 || len(a.Workloads()) != 1 {
		t.Fatalf("removal must wait for the grace period: timers=%d workloads=%d", len(ft.fns), len(a.Workloads()))
	}
	// Reconnect within grace: the pending removal is void.
	a.Connect("p1", w)
	ft.fns[0]()
	if len(a.Workloads()) != 1 || changes.Load() != 1 {
		t.Fatalf("stale timer removed a reconnected workload")
	}
	a.Disconnect("p1")
	ft.fns[1]()
	if len(a.Workloads()) != 0 || changes.Load() != 2 {
		t.Fatalf("workload not removed after grace: %d workloads, %d changes", len(a.Workloads()), changes.Load())
	}
	a.Disconnect("unknown") // harmless
}

func TestAutoZeroGrace(t *testing.T) {
	a := NewAuto(0, nil)
	a.Connect("p", &Workload{Name: "x"})
	a.Disconnect("p")
	if len(a.Workloads()) != 0 {
		t.Fatal("zero grace must remove at once")
	}
}
