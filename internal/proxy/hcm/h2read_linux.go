package hcm

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// HTTP/2 reads. Profile (the bench's client sidecar at 1,000 h2c
// requests/s, perf stat on its syscalls): x/net/http2's server reads
// every frame with two unbuffered reads (the 9-byte header, then the
// payload) and a third that finds the socket empty, 5.7 reads per request
// against 3 on the lean HTTP/1 path. h2Conn reads what the socket holds at
// once into a pooled buffer and serves the frame reads from it. The buffer
// is taken when the socket is readable and given back when drained, so an
// idle HTTP/2 connection holds none (issue 18).

// h2ReadBuf is the size of one socket read: a burst of request frames,
// or a DATA frame of the default 16 KiB maximum with its header.
const h2ReadBuf = 16<<10 + 9

// h2Direct: a read at least this large with nothing buffered goes
// straight to the socket (a DATA payload; copying it gains nothing).
const h2Direct = 1024

var h2BufPool = sync.Pool{New: func() any { b := make([]byte, h2ReadBuf); return &b }}

// h2Conn returns the connection x/net/http2 serves: cc itself when it is
// not a plain socket (TLS buffers records already; elsewhere nothing is
// gained), else a reader that batches its frame reads.
func h2Conn(cc *conn) net.Conn {
	if len(cc.replay) > 0 {
		return cc
	}
	raw := rawConnOf(cc.Conn)
	if raw == nil {
		return cc
	}
	c := &h2conn{conn: cc, raw: raw}
	c.readFn = c.readSocket
	return c
}

// h2conn is a plain TCP downstream connection read through a pooled
// buffer. Only x/net's frame reader reads it (one goroutine at a time).
type h2conn struct {
	*conn
	raw    syscall.RawConn
	readFn func(fd uintptr) bool
	buf    *[]byte // nil when nothing is buffered
	r, w   int
	err    error // of the last socket read
}

func (c *h2conn) Read(p []byte) (int, error) {
	if c.buf == nil {
		if c.conn.r != nil && c.conn.r.Buffered() > 0 {
			return c.conn.Read(p) // the bytes the sniffer peeked
		}
		if len(p) >= h2Direct {
			return c.conn.Conn.Read(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		h2BufPool.Put(c.buf)
		c.buf, c.r, c.w = nil, 0, 0
	}
	return n, nil
}

// fill reads what the socket holds into a pooled buffer, waiting for it
// on the poller without holding the buffer (deadlines and Close apply).
func (c *h2conn) fill() error {
	c.err = nil
	if err := c.raw.Read(c.readFn); err != nil {
		c.release()
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	if c.err != nil {
		c.release()
		if c.err == io.EOF {
			return io.EOF
		}
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", c.err)}
	}
	return nil
}

// readSocket is the raw read callback: false asks the poller to wait.
func (c *h2conn) readSocket(fd uintptr) bool {
	if c.buf == nil {
		c.buf = h2BufPool.Get().(*[]byte)
	}
	for {
		n, err := syscall.Read(int(fd), *c.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.release()
			return false
		case err != nil:
			c.err = err
		case n == 0:
			c.err = io.EOF
		default:
			c.r, c.w = 0, n
		}
		return true
	}
}

func (c *h2conn) release() {
	if c.buf != nil {
		h2BufPool.Put(c.buf)
		c.buf, c.r, c.w = nil, 0, 0
	}
}
