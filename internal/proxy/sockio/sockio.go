// Package sockio reads and writes non-blocking TCP sockets without the Go
// runtime's syscall hand-off.
//
// Profile (a sidecar pair under fortio, perf): a write on loopback runs the
// receiver's TCP stack inline and often takes longer than the 20 µs after
// which the runtime's monitor thread takes the processor away from a
// goroutine in a system call and wakes another thread to run it; the
// writer then has to get a processor back when the call returns. On a
// busy proxy that hand-off ran on most requests: context switches
// (finish_task_switch), futex wake-ups and the monitor's own 20 µs sleeps
// were about a quarter of the proxy's CPU. A read or write on a
// non-blocking socket never blocks in the kernel (it returns EAGAIN, and
// the caller waits in the poller as before), so it is issued as a raw
// system call here: the goroutine keeps its processor for the few
// microseconds the kernel works. Peek does the same for the MSG_PEEK
// checks made before waiting: with no system call of the hot path going
// through the hand-off, the monitor thread backs off to its long sleeps.
// The price: a stop-the-world (GC) waits for a raw call in progress, which
// never blocks, so for microseconds.
package sockio

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// Conn reads and writes one TCP socket. A Conn is used by one reader and
// one writer goroutine at a time (as a net.Conn's Read and Write).
type Conn struct {
	nc net.Conn
	rc syscall.RawConn

	rp   []byte
	rn   int
	rerr error
	rfn  func(uintptr) bool
	wp   []byte
	wn   int
	werr error
	wfn  func(uintptr) bool

	// A held write (hold.go): hold arms the next Write; hp[hn:] is still
	// to be written by the next Read; lost counts what a failed Read
	// left unwritten.
	hold bool
	hp   []byte
	hn   int
	lost int
	rhfn func(uintptr) bool
}

// New returns a Conn over nc's socket when nc is a *net.TCPConn on a
// platform with raw system calls; nil otherwise (use nc itself).
func New(nc net.Conn) *Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok || !supported {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{nc: nc, rc: rc}
	c.rfn, c.wfn, c.rhfn = c.read, c.write, c.readHeld
	return c
}

// Read reads from the socket; it waits in the poller (honouring the read
// deadline) while nothing is there. io.EOF at the peer's FIN.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.hp != nil {
		return c.readAfterHeld(p)
	}
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.rfn)
	n, rerr := c.rn, c.rerr
	c.rp = nil
	return c.result("read", n, err, rerr)
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, errno := rawRead(fd, c.rp)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			c.rerr = errno
		case n == 0:
			c.rerr = io.EOF
		default:
			c.rn = n
		}
		return true
	}
}

// Write writes all of p (waiting in the poller, honouring the write
// deadline, when the socket buffer is full).
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.hold {
		c.keep(p)
		return len(p), nil
	}
	if c.hp != nil {
		if err := c.Flush(); err != nil {
			return 0, err
		}
	}
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.wfn)
	n, werr := c.wn, c.werr
	c.wp = nil
	return c.result("write", n, err, werr)
}

// result is a Read's or Write's outcome: err from the poller (closed,
// deadline), else ioErr from the system call; io.EOF as it is, others
// wrapped as net.Conn methods wrap them.
func (c *Conn) result(op string, n int, err, ioErr error) (int, error) {
	if err == nil {
		err = ioErr
	}
	if err == nil || err == io.EOF {
		return n, err
	}
	return n, opError(op, c.nc, err)
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, errno := rawWrite(fd, c.wp[c.wn:])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			c.werr = errno
			return true
		}
		c.wn += n
	}
	return true
}

// opError wraps err as net.Conn methods do, so callers' checks
// (net.Error timeouts, errors.Is on the errno) keep working.
func opError(op string, nc net.Conn, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: nc.LocalAddr(), Addr: nc.RemoteAddr(), Err: err}
}

// Peek looks at the bytes waiting on the socket fd without consuming them
// and without waiting (recv with MSG_PEEK and MSG_DONTWAIT): n > 0 bytes
// are there; EAGAIN nothing yet; n == 0 and no error the peer's FIN; any
// other error a broken connection. For use inside syscall.RawConn's
// Control or Read callbacks. ENOSYS where sockets cannot be peeked.
func Peek(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, syscall.EINVAL
	}
	for {
		n, e := rawPeek(fd, b)
		if e != syscall.EINTR {
			if e != 0 {
				n = 0
			}
			return n, e
		}
	}
}
