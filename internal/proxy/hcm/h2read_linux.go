package hcm

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/sockio"
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
	c.now = time.Now
	cc.h2 = c
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

	// Write side (see Write): responses whose DATA is about to follow
	// their HEADERS, and the HEADERS held back for it.
	pending atomic.Int32
	hintAt  atomic.Int64     // when expectData was last called (now's clock)
	now     func() time.Time // time.Now; tests move it
	wmu     sync.Mutex
	held    []byte
	iov     [2][]byte // held and the next write, for one writev
	bufs    net.Buffers
	hold    *time.Timer
	werr    error // of a write the timer made
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
	// A raw read (sockio): a non-blocking socket never blocks, so the
	// runtime's syscall hand-off is not needed (issue 17: it was 6 % of
	// the client sidecar's CPU in sysmon alone at max-h2c).
	n, errno := sockio.ReadFD(fd, *c.buf)
	switch {
	case errno == syscall.EAGAIN:
		c.release()
		return false
	case errno != 0:
		c.err = errno
	case n == 0:
		c.err = io.EOF
	default:
		c.r, c.w = 0, n
	}
	return true
}

func (c *h2conn) release() {
	if c.buf != nil {
		h2BufPool.Put(c.buf)
		c.buf, c.r, c.w = nil, 0, 0
	}
}

// Responses. x/net writes a response's HEADERS, hands the result back to
// the handler goroutine and only then takes its DATA, so a response of
// one frame of each became two socket writes, each waking the client.
// When the handler ends with its whole body buffered (expectData),
// Write holds the HEADERS back and sends them with the next write: one
// writev. If nothing follows within h2Hold (flow control stalls the
// DATA, the client reset the stream) the timer sends them alone.

// h2Hold bounds how long HEADERS wait for their DATA.
const h2Hold = time.Millisecond

// h2HoldMax: larger header blocks are written at once.
const h2HoldMax = 1024

// expectData tells the writer that a response's HEADERS without
// END_STREAM are about to be written and its DATA will follow at once.
func (c *h2conn) expectData() {
	c.hintAt.Store(c.now().UnixNano())
	c.pending.Add(1)
}

// expecting reports whether a response announced by expectData has not
// had its HEADERS held yet. A hint whose HEADERS went out with the DATA
// in one of x/net's writes is never taken; hints older than h2Hold are
// dropped, so they cannot hold later HEADERS (a streaming response's).
func (c *h2conn) expecting() bool {
	if c.pending.Load() <= 0 {
		return false
	}
	if c.now().UnixNano()-c.hintAt.Load() > int64(h2Hold) {
		c.pending.Store(0)
		return false
	}
	return true
}

func (c *h2conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if len(c.held) > 0 {
		c.hold.Stop()
		h := len(c.held)
		c.iov = [2][]byte{c.held, p}
		c.bufs = c.iov[:]
		n, err := c.bufs.WriteTo(c.conn.Conn)
		c.iov, c.bufs = [2][]byte{}, nil // p is x/net's buffer
		c.held = c.held[:0]
		return max(int(n)-h, 0), err
	}
	if len(p) <= h2HoldMax && endsWithOpenHeaders(p) && c.expecting() {
		c.pending.Add(-1)
		c.held = append(c.held[:0], p...)
		if c.hold == nil {
			c.hold = time.AfterFunc(h2Hold, c.flushHeld)
		} else {
			c.hold.Reset(h2Hold)
		}
		return len(p), nil
	}
	return c.conn.Conn.Write(p)
}

// flushHeld sends held HEADERS that no DATA followed.
func (c *h2conn) flushHeld() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.held) == 0 {
		return
	}
	if _, err := c.conn.Conn.Write(c.held); err != nil {
		c.werr = err
	}
	c.held = c.held[:0]
}

// Close closes the socket first: that ends a write blocked on a client
// that stopped reading, which holds wmu.
func (c *h2conn) Close() error {
	err := c.conn.Close()
	c.wmu.Lock()
	if c.hold != nil {
		c.hold.Stop()
	}
	c.held = nil
	c.wmu.Unlock()
	return err
}

// endsWithOpenHeaders reports whether p is whole HTTP/2 frames, the last
// a complete HEADERS block that does not end its stream.
func endsWithOpenHeaders(p []byte) bool {
	i, last := 0, -1
	for i+9 <= len(p) {
		last = i
		i += 9 + (int(p[i])<<16 | int(p[i+1])<<8 | int(p[i+2]))
	}
	if i != len(p) || last < 0 {
		return false
	}
	const headers, endStream, endHeaders = 0x1, 0x1, 0x4
	typ, flags := p[last+3], p[last+4]
	return typ == headers && flags&endStream == 0 && flags&endHeaders != 0
}

// h2HandlerBuf is x/net's per-response buffer: a handler that writes no
// more than this and does not flush has its response sent at its end.
const h2HandlerBuf = 4 << 10
