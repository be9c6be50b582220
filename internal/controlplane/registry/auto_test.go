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

	a.Connect("p1", 1, w, true)
	if len(a.Workloads()) != 1 || changes.Load() != 1 {
		t.Fatalf("after connect: %d workloads, %d changes", len(a.Workloads()), changes.Load())
	}
	a.Connect("p1", 2, w, true) // newer stream, same workload: no change
	if changes.Load() != 1 {
		t.Fatalf("identical reconnect reported a change")
	}
	a.Disconnect("p1", 1) // the replaced stream: ignored
	a.Disconnect("p1", 2)
	if len(ft.fns) != 1 || len(a.Workloads()) != 1 {
		t.Fatalf("removal must wait for the grace period: timers=%d workloads=%d", len(ft.fns), len(a.Workloads()))
	}
	// Reconnect within grace: the pending removal is void.
	a.Connect("p1", 3, w, true)
	ft.fns[0]()
	if len(a.Workloads()) != 1 || changes.Load() != 1 {
		t.Fatalf("stale timer removed a reconnected workload")
	}
	a.Disconnect("p1", 3)
	ft.fns[1]()
	if len(a.Workloads()) != 0 || changes.Load() != 2 {
		t.Fatalf("workload not removed after grace: %d workloads, %d changes", len(a.Workloads()), changes.Load())
	}
	a.Disconnect("unknown", 1) // harmless
}

func TestAutoZeroGrace(t *testing.T) {
	a := NewAuto(0, nil)
	a.Connect("p", 1, &Workload{Name: "x"}, true)
	a.Disconnect("p", 1)
	if len(a.Workloads()) != 0 {
		t.Fatal("zero grace must remove at once")
	}
}

// Two streams for one node ID (issue 18 item 10): the newer owns the
// registration; the older one's late connect and its disconnect change
// nothing, so a stream that lost cannot rewrite or remove the winner's
// workload.
func TestAutoNewestStreamOwns(t *testing.T) {
	a := NewAuto(5*time.Second, nil)
	ft := &fakeTimers{}
	a.after = ft.after
	real := &Workload{Name: "reviews", Namespace: "default", Address: "127.0.10.1", Labels: map[string]string{"app": "reviews"}}
	other := &Workload{Name: "reviews", Namespace: "default", Address: "127.0.10.1", Labels: map[string]string{"app": "impostor"}}
	a.Connect("p", 1, other, true)
	a.Connect("p", 2, real, true)
	a.Connect("p", 1, other, true) // late request of the replaced stream
	a.Disconnect("p", 1)
	if len(ft.fns) != 0 {
		t.Fatal("the replaced stream's end scheduled a removal")
	}
	ws := a.Workloads()
	if len(ws) != 1 || ws[0].Labels["app"] != "reviews" {
		t.Fatalf("registry rewritten by the stream that lost: %+v", ws[0])
	}
}

// Restored registrations (a control-plane restart) stay until their grace
// ends, unless their proxy reconnects first.
func TestAutoRestore(t *testing.T) {
	a := NewAuto(5*time.Second, nil)
	ft := &fakeTimers{}
	a.after = ft.after
	w1 := &Workload{Name: "a", Namespace: "default", Address: "127.0.10.1"}
	w2 := &Workload{Name: "b", Namespace: "default", Address: "127.0.10.2"}
	a.Restore(map[string]*Workload{"p1": w1, "p2": w2}, 30*time.Second)
	if len(a.Workloads()) != 2 || len(ft.fns) != 2 {
		t.Fatalf("restored %d workloads, %d timers", len(a.Workloads()), len(ft.fns))
	}
	a.Connect("p1", 1, w1, true) // p1's proxy reconnects
	for _, fn := range ft.fns {
		fn()
	}
	ws := a.Workloads()
	if len(ws) != 1 || ws[0].Name != "a" {
		t.Fatalf("after grace: %+v", ws)
	}
	if r := a.Registered(); len(r) != 1 || r["p1"] != w1 {
		t.Fatalf("registered = %v", r)
	}
}

// A proxy's endpoint is published only while it is ready: not while it
// starts, and no longer once it drains (issue 18 item 6: the endpoint
// leaves EDS as soon as the proxy starts draining).
func TestAutoServingOnly(t *testing.T) {
	var changes atomic.Int32
	a := NewAuto(5*time.Second, func() { changes.Add(1) })
	w := &Workload{Name: "r", Namespace: "default", Address: "127.0.10.1"}
	a.Connect("p", 1, w, false) // starting
	if len(a.Workloads()) != 0 || len(a.Registered()) != 0 {
		t.Fatal("a starting proxy's workload is published")
	}
	a.Connect("p", 1, w, true) // ready
	if len(a.Workloads()) != 1 || changes.Load() != 2 {
		t.Fatalf("ready: %d workloads, %d changes", len(a.Workloads()), changes.Load())
	}
	a.Connect("p", 1, w, false) // draining
	if len(a.Workloads()) != 0 || changes.Load() != 3 {
		t.Fatalf("draining: %d workloads, %d changes", len(a.Workloads()), changes.Load())
	}
}
