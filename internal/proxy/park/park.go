// Package park keeps idle connections waiting for their next byte without
// a goroutine each. A goroutine parked on a socket costs at least its 2 KiB
// stack and its g; thousands of idle keep-alive connections cost megabytes
// for nothing (issue 18: an idle connection must cost at most 4 KB). A
// Waiter holds parked sockets in one epoll instance (Linux; New fails
// elsewhere and callers keep a goroutine per wait) and a deadline heap
// behind one timer, and tells each connection's Waker exactly once when
// it is readable or hung up (Ready), its deadline passed (Expired), or
// Unpark or Close took it out (Canceled), or it was closed while parked
// (Canceled, found within reapEvery: a closed socket leaves the epoll set
// without an event). The Waker then serves the connection on a goroutine
// of its own.
//
// A parked socket stays registered with Go's own netpoller; park only adds
// it to its epoll set, one-shot, for the time it is parked.
package park

import (
	"container/heap"
	"errors"
	"sync"
	"syscall"
	"time"
)

// Reason says why a parked connection woke.
type Reason uint8

const (
	Ready    Reason = iota + 1 // readable, hung up or in error
	Expired                    // its deadline passed
	Canceled                   // Unpark or Close
)

func (r Reason) String() string {
	switch r {
	case Ready:
		return "ready"
	case Expired:
		return "expired"
	case Canceled:
		return "canceled"
	}
	return "unknown"
}

// Waker is told once per Park why the connection woke. Wake runs on the
// Waiter's goroutine (or Unpark's caller) and must not block: it starts
// whatever serves the connection next.
type Waker interface {
	Wake(Reason)
}

// ErrClosed is Park's error after Close.
var ErrClosed = errors.New("park: waiter closed")

// Spot is a connection's place in a Waiter; embed it in the connection's
// state (the zero value is not parked) so that parking allocates nothing.
// A Spot is in at most one Waiter at a time; its fields belong to the
// Waiter's lock.
type Spot struct {
	w     *Waiter // non-nil while parked
	wk    Waker
	rc    syscall.RawConn
	when  int64 // deadline, unix ns; 0 none
	hidx  int32 // index in w.timers; -1 none
	slot  int32
	gen   uint32
	armed bool // registered with the poller once (re-armed with MOD)
}

// Waiter parks connections. Safe for concurrent use.
type Waiter struct {
	p poller

	mu      sync.Mutex
	closed  bool
	slots   []*Spot // by slot; nil when free
	gens    []uint32
	free    []int32
	timers  timerHeap
	timer   *time.Timer
	reapT   *time.Timer // armed while any spot is parked
	reaping bool
	woke    []Waker // the poller goroutine's batch (its own)
	// Park's arguments to armFn (under mu), so parking allocates nothing.
	armFn   func(fd uintptr)
	armSpot *Spot
	armErr  error
}

// New starts a Waiter: its poller goroutine and an idle timer.
func New() (*Waiter, error) { return newWaiter(false) }

// newWaiter: blocking selects a goroutine blocked in epoll_wait on a
// thread of its own instead of waiting in Go's netpoller (benchmarks
// compare the two).
func newWaiter(blocking bool) (*Waiter, error) {
	w := &Waiter{}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	w.reapT = time.AfterFunc(time.Hour, w.reap)
	w.reapT.Stop()
	w.armFn = w.arm
	if err := w.p.open(blocking); err != nil {
		return nil, err
	}
	go w.p.run(w)
	return w, nil
}

// Park adds the socket rc to the waiter until it is readable (or hung up),
// deadline passes (zero: none) or Unpark/Close cancels it; then wk.Wake is
// called once. The caller must not read rc until then. An error means the
// socket was not parked (closed, or no room) and wk is not called.
func (w *Waiter) Park(s *Spot, rc syscall.RawConn, deadline time.Time, wk Waker) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if s.w != nil {
		return errors.New("park: spot already parked")
	}
	var slot int32
	if n := len(w.free); n > 0 {
		slot = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		slot = int32(len(w.slots))
		w.slots = append(w.slots, nil)
		w.gens = append(w.gens, 0)
	}
	w.gens[slot]++
	s.slot, s.gen, s.hidx = slot, w.gens[slot], -1
	// Armed under the lock: an event for this slot can only be taken
	// once the Spot is complete.
	w.armSpot, w.armErr = s, nil
	err := rc.Control(w.armFn)
	if err == nil {
		err = w.armErr
	}
	w.armSpot = nil
	if err != nil {
		w.free = append(w.free, slot)
		return err
	}
	s.armed = true
	s.w, s.wk, s.rc = w, wk, rc
	w.slots[slot] = s
	if !w.reaping {
		w.reaping = true
		w.reapT.Reset(reapEvery)
	}
	s.when = 0
	if !deadline.IsZero() {
		s.when = deadline.UnixNano()
		heap.Push(&w.timers, s)
		if s.hidx == 0 {
			w.timer.Reset(time.Until(deadline))
		}
	}
	return nil
}

// arm registers fd of w.armSpot with the poller (rc.Control's callback).
func (w *Waiter) arm(fd uintptr) {
	s := w.armSpot
	w.armErr = w.p.arm(int(fd), s.slot, s.gen, s.armed)
}

// Unpark takes s out of the waiter and calls its Waker with Canceled, on
// the caller's goroutine; false when s was not parked (it woke already).
// The caller typically closes the connection first.
func (w *Waiter) Unpark(s *Spot) bool {
	w.mu.Lock()
	if s.w != w {
		w.mu.Unlock()
		return false
	}
	wk := s.wk
	w.take(s)
	w.mu.Unlock()
	wk.Wake(Canceled)
	return true
}

// Len is the number of parked connections.
func (w *Waiter) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.slots) - len(w.free)
}

// Close wakes every parked connection with Canceled and stops the waiter.
func (w *Waiter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.timer.Stop()
	w.reapT.Stop()
	var all []*Spot
	for _, s := range w.slots {
		if s != nil {
			all = append(all, s)
		}
	}
	wks := make([]Waker, len(all))
	for i, s := range all {
		wks[i] = s.wk
		w.take(s)
	}
	w.mu.Unlock()
	for _, wk := range wks {
		wk.Wake(Canceled)
	}
	return w.p.close()
}

// take removes s (parked) under w.mu.
func (w *Waiter) take(s *Spot) {
	w.slots[s.slot] = nil
	w.free = append(w.free, s.slot)
	if s.hidx >= 0 {
		heap.Remove(&w.timers, int(s.hidx))
	}
	s.w, s.wk, s.rc = nil, nil, nil
}

// ready wakes the spots the poller found (slot, gen pairs); a stale event
// of a slot that woke otherwise and was reused is dropped by its gen.
func (w *Waiter) ready(evs []event) {
	w.mu.Lock()
	woke := w.woke[:0]
	for _, e := range evs {
		if e.slot < 0 || int(e.slot) >= len(w.slots) {
			continue
		}
		if s := w.slots[e.slot]; s != nil && s.gen == e.gen {
			woke = append(woke, s.wk)
			w.take(s)
		}
	}
	w.mu.Unlock()
	for i, wk := range woke {
		wk.Wake(Ready)
		woke[i] = nil
	}
	w.woke = woke[:0]
}

// expire wakes every spot whose deadline passed and sets the timer for
// the next.
func (w *Waiter) expire() {
	now := time.Now().UnixNano()
	var wks []Waker
	w.mu.Lock()
	for len(w.timers) > 0 && w.timers[0].when <= now {
		s := w.timers[0]
		wks = append(wks, s.wk)
		w.take(s)
	}
	if len(w.timers) > 0 && !w.closed {
		w.timer.Reset(time.Duration(w.timers[0].when - now))
	}
	w.mu.Unlock()
	for _, wk := range wks {
		wk.Wake(Expired)
	}
}

// reapEvery is how often parked sockets are checked for having been
// closed by someone else (a listener closing what is left after its drain
// timeout): their owners are woken to clean up.
const reapEvery = time.Second

func noop(uintptr) {}

// reap wakes, Canceled, every spot whose socket was closed.
func (w *Waiter) reap() {
	var wks []Waker
	w.mu.Lock()
	for _, s := range w.slots {
		if s != nil && s.rc.Control(noop) != nil {
			wks = append(wks, s.wk)
			w.take(s)
		}
	}
	w.reaping = !w.closed && len(w.slots) > len(w.free)
	if w.reaping {
		w.reapT.Reset(reapEvery)
	}
	w.mu.Unlock()
	for _, wk := range wks {
		wk.Wake(Canceled)
	}
}

// timerHeap orders parked spots with a deadline, earliest first.
type timerHeap []*Spot

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = int32(i), int32(j)
}
func (h *timerHeap) Push(x any) {
	s := x.(*Spot)
	s.hidx = int32(len(*h))
	*h = append(*h, s)
}
func (h *timerHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.hidx = -1
	return s
}

// event is a readiness the poller reports: the slot and its generation.
type event struct {
	slot int32
	gen  uint32
}
