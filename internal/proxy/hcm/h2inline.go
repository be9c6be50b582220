package hcm

import (
	"sync"
	"time"
)

// Streams served on the read loop's goroutine (issue 17, h2c CPU).
//
// Profile (the bench's client sidecar, perf stat and perf record, h2c
// at 1,000 requests/s and at max): each request without a body cost a
// hand-off to a handler goroutine, and the read loop's next read found
// the socket empty (EAGAIN) before it waited, where the lean HTTP/1 path
// serves a request on the goroutine that read it and writes its
// response from inside the next read's poller callback (3.5 reads per
// request against 2). So when a connection has no other stream and
// nothing more buffered, the read loop runs a bodiless stream's handler
// itself and holds the response's last write for its next read, which
// writes it and then reads: the client may have sent more before the
// poller's readiness was reset, so the read cannot be skipped.
//
// While it does, no one reads the connection: a frame the client sends
// meanwhile (a reset, a PING, a new stream) would wait. So a timer hands
// the read loop to a fresh goroutine after h2sInlineWait, and so does a
// response that has to wait for send window (its WINDOW_UPDATE must be
// read). A connection that once had two streams open at the same time
// (a multiplexing client: gRPC, a browser) never runs one inline again.

// h2sInlineWait is how long a stream served inline may keep the
// connection unread.
var h2sInlineWait = 5 * time.Millisecond

// h2sInline is the read loop's state while it serves a stream inline.
type h2sInline struct {
	mu     sync.Mutex
	ep     uint64 // bumped by every inline stream and every take-over
	active bool   // an inline stream runs and no one else reads
	ok     bool   // the connection can serve inline (plain TCP, raw writes)
	served uint64 // streams served inline (tests)
	timer  *time.Timer
}

// concurrent (under sc.mu) is set once two streams were open at once.

// inlineOK reports whether the read loop may serve its next stream
// inline: the connection allows it, it never multiplexed, and no frame is
// buffered behind this one. Called by the read loop with sc.mu held.
func (sc *h2sConn) inlineOK() bool {
	return sc.inl.ok && !sc.concurrent && !sc.goingAway && sc.rdDrained()
}

// inlineActive reports whether an inline stream still owns the read loop.
func (sc *h2sConn) inlineActive() bool {
	sc.inl.mu.Lock()
	defer sc.inl.mu.Unlock()
	return sc.inl.active
}

// runInline serves st on the read loop's goroutine; false when another
// goroutine took the read loop over meanwhile (this one then stays as a
// handler goroutine until the connection ends).
func (sc *h2sConn) runInline(st *h2sStream) bool {
	st.inline = true
	sc.inl.mu.Lock()
	sc.inl.ep++
	sc.inl.served++
	ep := sc.inl.ep
	sc.inl.active = true
	if sc.inl.timer == nil {
		sc.inl.timer = time.AfterFunc(h2sInlineWait, sc.takeOver)
	} else {
		sc.inl.timer.Reset(h2sInlineWait)
	}
	sc.inl.mu.Unlock()
	sc.serveStream(st)
	sc.inl.mu.Lock()
	sc.inl.timer.Stop()
	kept := sc.inl.active && sc.inl.ep == ep
	sc.inl.active = false
	sc.inl.mu.Unlock()
	if kept {
		sc.mu.Lock()
		sc.handlers--
		sc.maybeLinger()
		sc.armIdleLocked()
		sc.mu.Unlock()
		return true
	}
	// The read loop moved on: send a held response now, then serve as a
	// handler goroutine (queued streams, the idle worker).
	sc.write(nil)
	for st = sc.next(); st != nil; st = sc.next() {
		sc.serveStream(st)
	}
	return false
}

// takeOver starts a goroutine that reads the connection while an inline
// stream's handler runs (its timer, or a wait for send window).
func (sc *h2sConn) takeOver() {
	sc.inl.mu.Lock()
	if !sc.inl.active {
		sc.inl.mu.Unlock()
		return
	}
	sc.inl.active = false
	sc.inl.ep++
	sc.inl.mu.Unlock()
	go func() {
		if sc.loop(false) {
			sc.end()
		}
	}()
}

// writeHeld writes a response the inline stream held (sendLocked) from
// inside the read loop's poller callback, before it waits: true when it
// did, so the read can wait at once. On a full socket buffer the rest
// is written as usual. Called by the read callback with fd, the socket.
func (sc *h2sConn) writeHeld(fd uintptr) bool {
	if !sc.held.Load() || !sc.wmu.TryLock() {
		return false // another writer holds the lock: it sends out with its frames
	}
	defer sc.wmu.Unlock()
	if !sc.held.Load() {
		return false
	}
	sc.held.Store(false)
	sc.takeCtrl()
	n, errno := rawWriteFD(fd, sc.out)
	if errno != 0 || n < len(sc.out) {
		if errno != 0 && !isEAGAIN(errno) {
			n = 0 // retried below, which reports the error
		}
		if _, err := sc.wr.Write(sc.out[n:]); err != nil {
			sc.werr = err
			sc.wfailed.Store(true)
			sc.cc.Close()
		}
		sc.out = sc.out[:0]
		return false
	}
	sc.out = sc.out[:0]
	return true
}
