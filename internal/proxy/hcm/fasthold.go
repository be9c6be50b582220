package hcm

import (
	"errors"
	"syscall"
)

// A kept-alive response is written inside the wait for the next request.
//
// Profile (sidecar pair, 64 connections, perf stat): after writing a
// response the lean path peeked at the socket (recvfrom MSG_PEEK), found
// it empty and only then waited in the poller, because the poller's
// readiness is reset when that wait begins and a request that arrived
// between the write and the reset would otherwise go unnoticed. Writing
// the response from the wait's own callback, after the reset (sockio
// Hold), makes the peek unnecessary: the client cannot send the next
// request before it has the response.

// holdable: the response may be held (plain TCP written directly, nothing
// pipelined or buffered above the socket).
func (fc *fastConn) holdable() bool {
	// br is nil when a request without a body gave its read buffer back.
	return fc.sio != nil && fc.raw != nil && (fc.br == nil || fc.br.Buffered() == 0) && fc.bw != nil &&
		fc.bw.Buffered() > 0 && fc.unbuffered()
}

// hold hands the buffered response to sio without writing it; false when
// the writer had failed before (nothing is held then).
func (fc *fastConn) hold() bool {
	fc.sio.Hold()
	if err := fc.bw.Flush(); err != nil || fc.sio.Held() == 0 {
		fc.sio.Flush() // disarms the hold
		return false
	}
	fc.held = true
	return true
}

// flushHeld writes a held response now (the connection is closing).
func (fc *fastConn) flushHeld() {
	fc.held = false
	fc.sio.Flush()
	fc.end()
}

// writeHeld writes the held response from the readiness callback; false
// (wait for the next request) when all of it left. The connection's
// buffers go back to the pool then, and it turns idle.
func (fc *fastConn) writeHeld(fd uintptr) bool {
	fc.held = false
	if fc.heldErr = fc.sio.WriteHeld(fd); fc.heldErr != 0 {
		return true
	}
	fc.release()
	fc.end()
	// A drain, or the end of a drain period, that came after the loop
	// looked: the connection is done (as the loop would decide).
	if fc.m.draining.Load() || fc.m.idleClosed.Load() {
		fc.heldErr = syscall.ECONNABORTED
		return true
	}
	return false
}

// errHeldDone ends a connection whose held response could not be written
// or that began draining meanwhile.
var errHeldDone = errors.New("connection done after its response")

// awaitHeld is await with a response held: written by the wait's first
// callback, then the wait for the next request as usual.
func (fc *fastConn) awaitHeld() error {
	fc.waited, fc.heldErr = false, 0
	err := fc.raw.Read(fc.readyFn)
	switch {
	case fc.held:
		// The wait ended before its callback ran (closed): the response
		// goes out if it can, and the connection is done.
		fc.flushHeld()
		if err == nil {
			err = errHeldDone
		}
		return err
	case fc.heldErr == syscall.EAGAIN:
		// The socket buffer filled: the rest waits for space.
		if ferr := fc.sio.Flush(); ferr != nil {
			fc.end()
			return ferr
		}
		fc.end()
		return fc.await()
	case fc.heldErr != 0:
		fc.end()
		return errHeldDone
	case err != nil:
		return err
	}
	fc.acquire()
	_, err = fc.br.Peek(1)
	return err
}
