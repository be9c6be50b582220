package sockio

import "syscall"

// Held writes: a request (or a response) that is always followed by a
// wait for the other side's answer is written inside that wait.
//
// Profile (sidecar pair, 64 connections, perf stat): after writing a
// request upstream the pool read the socket at once, found it empty
// (EAGAIN, about one system call in seven) and only then waited in the
// poller. The read is there because the poller's readiness is reset when
// a read begins: bytes that arrived between the write and that reset
// would otherwise never be noticed. Writing inside the read's own
// callback (after the reset) closes that gap, so the answer's arrival is
// always seen by the poller and the empty read can be skipped.

// Hold makes the next Write keep p instead of writing it: the next Read
// writes it just before it waits, and Flush writes it at once. The caller
// must not change p's bytes until then, and must not Write concurrently
// with that Read.
func (c *Conn) Hold() { c.hold, c.lost = true, 0 }

// Held reports the bytes of a held write not written yet (after a Read
// that failed, the ones that never reached the socket).
func (c *Conn) Held() int { return len(c.hp) - c.hn + c.lost }

// Flush writes a held write now.
func (c *Conn) Flush() error {
	c.hold = false
	if c.hp == nil {
		return nil
	}
	p := c.hp[c.hn:]
	c.hp, c.hn = nil, 0
	_, err := c.Write(p)
	return err
}

// keep stores a held write (the Write that Hold armed).
func (c *Conn) keep(p []byte) {
	c.hold, c.lost = false, 0
	c.hp, c.hn = p, 0
}

// WriteHeld writes the held bytes from inside a syscall.RawConn Read
// callback on this Conn's socket: 0 when all were written (the caller's
// callback may then wait for the answer without reading first), EAGAIN
// when the socket buffer filled first (Flush writes the rest, waiting),
// another errno when the connection broke.
func (c *Conn) WriteHeld(fd uintptr) syscall.Errno {
	for c.hn < len(c.hp) {
		n, errno := rawWrite(fd, c.hp[c.hn:])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return errno
		}
		c.hn += n
	}
	c.hp, c.hn = nil, 0
	return 0
}

// readHeld is the Read callback while a write is held: the write first,
// then the wait (the answer cannot be there before the question left).
func (c *Conn) readHeld(fd uintptr) bool {
	if c.hp == nil {
		return c.read(fd)
	}
	switch errno := c.WriteHeld(fd); errno {
	case 0:
		return false
	case syscall.EAGAIN:
		return true // Read flushes the rest and reads again
	default:
		c.rerr = &writeError{errno}
		return true
	}
}

// writeError is a held write's failure, reported by the Read that made it
// with the write's operation name.
type writeError struct{ errno syscall.Errno }

func (e *writeError) Error() string { return e.errno.Error() }
func (e *writeError) Unwrap() error { return e.errno }

// readAfterHeld is Read with a write held: written, then waited on.
func (c *Conn) readAfterHeld(p []byte) (int, error) {
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.rhfn)
	n, rerr := c.rn, c.rerr
	c.rp = nil
	if we, ok := rerr.(*writeError); ok {
		c.drop()
		return c.result("write", 0, nil, we.errno)
	}
	if err != nil || rerr != nil {
		c.drop()
		return c.result("read", n, err, rerr)
	}
	if c.hp != nil {
		// The socket buffer filled before the held write ended: the rest
		// waits for space, then the answer is read as usual.
		if err := c.Flush(); err != nil {
			return 0, err
		}
		return c.Read(p)
	}
	return n, nil
}

// drop forgets a held write a failed Read did not finish (Held still
// counts it).
func (c *Conn) drop() {
	c.lost += len(c.hp) - c.hn
	c.hp, c.hn = nil, 0
}
