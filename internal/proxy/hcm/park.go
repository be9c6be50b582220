package hcm

import (
	"crypto/tls"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/park"
)

// Parking idle connections (issue 18 item 9). A connection idle for
// idleHandoff parks its socket in the process's park.Waiter: no goroutine
// waits for it, so it costs only its connection state (5.2 KB of RSS with
// a 2 KiB goroutine per wait before). When its next request arrives, it
// hangs up, its idle or request headers timeout passes, or a drain
// unparks it, a fresh goroutine takes the connection up where wait left
// it (fastConn.idle). Where parking is not possible (no epoll, a wrapper
// or TLS holding bytes, an error) the wait stays on a fresh goroutine.

// sharedParker is the waiter of every Manager of the process (one epoll
// instance, as the runtime's netpoller is one); nil where parking is not
// supported.
var sharedParker = sync.OnceValue(func() *park.Waiter {
	w, err := park.New()
	if err != nil {
		return nil
	}
	return w
})

// parking is a fastConn's place in the waiter.
type parking struct {
	park.Spot
	done func() // the listener's, for the goroutine that wakes
}

// park parks fc's socket until its next byte, hang-up or fc.waitEnd; false
// when it cannot and a goroutine must wait instead.
func (fc *fastConn) park(done func()) bool {
	w := fc.m.parker
	if w == nil || fc.bufs != nil {
		return false
	}
	rc := fc.parkable()
	if rc == nil {
		return false
	}
	// The woken goroutine reads with the deadline wait would have used.
	fc.cc.SetReadDeadline(fc.waitEnd)
	fc.deadline = !fc.waitEnd.IsZero()
	fc.pk.done = done
	fc.stateMu.Lock() // orders against drain, which unparks
	defer fc.stateMu.Unlock()
	if fc.state != fastIdle {
		return false // drained meanwhile: the goroutine path closes it
	}
	return w.Park(&fc.pk.Spot, rc, fc.waitEnd, fc) == nil
}

// parkable returns the socket to park when no byte is held above it;
// nil otherwise.
func (fc *fastConn) parkable() syscall.RawConn {
	if !fc.unbuffered() {
		return nil
	}
	if fc.raw != nil {
		return fc.raw
	}
	tc, ok := fc.cc.Conn.(*tls.Conn)
	if !ok {
		return rawConnOf(fc.cc.Conn)
	}
	// A tls.Conn may hold records it read ahead (a pipelined request)
	// that the socket will not signal again: read with an expired
	// deadline, which returns what it holds and reads nothing from the
	// socket. What it returns is read again by the waiting goroutine.
	tc.SetReadDeadline(time.Unix(1, 0))
	n, err := tc.Read(fc.src.one[:])
	if n == 1 {
		fc.cc.replay = []byte{fc.src.one[0]}
		return nil
	}
	if !isTimeout(err) {
		return nil // closed or failed: the goroutine finds out
	}
	return rawConnOf(tc.NetConn())
}

// Wake is park.Waker: the connection woke; a fresh goroutine serves it,
// closes it or waits on (see idle).
func (fc *fastConn) Wake(park.Reason) {
	done := fc.pk.done
	fc.pk.done = nil
	go fc.idle(done, minStack)
}

// unpark wakes a parked connection that drain closed, so that its
// goroutine cleans it up (a closed socket leaves the epoll set silently).
// Called with stateMu held.
func (fc *fastConn) unpark() {
	if w := fc.m.parker; w != nil {
		w.Unpark(&fc.pk.Spot)
	}
}
