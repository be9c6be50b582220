package hcm

import (
	"io"
	"syscall"

	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// initInline lets a plain TCP connection with raw writes serve streams
// inline (h2inline.go): its read callback writes a held response first.
func (sc *h2sConn) initInline() {
	hc, ok := sc.rd.(*h2conn)
	if !ok {
		return
	}
	if _, ok := sc.wr.(*sockio.Conn); !ok {
		return
	}
	sc.inl.ok = true
	read := hc.readSocket
	hc.readFn = func(fd uintptr) bool {
		// Read even after a held write: an HTTP/2 client may send at any
		// time (another stream, a PING, a WINDOW_UPDATE), and bytes that
		// arrived before this wait reset the poller's readiness would
		// otherwise never wake it (TestH2ServerDifferential's concurrent
		// GETs hung that way).
		sc.writeHeld(fd)
		return read(fd)
	}
}

// rdDrained reports whether no bytes are buffered above the socket.
func (sc *h2sConn) rdDrained() bool {
	hc, ok := sc.rd.(*h2conn)
	return ok && hc.buf == nil && (hc.conn.r == nil || hc.conn.r.Buffered() == 0)
}

func rawWriteFD(fd uintptr, p []byte) (int, syscall.Errno) { return sockio.WriteFD(fd, p) }

func isEAGAIN(e syscall.Errno) bool { return e == syscall.EAGAIN }

// batched reports whether rd is a plain TCP connection read through
// h2Conn's buffer.
func batched(rd io.Reader) bool {
	_, ok := rd.(*h2conn)
	return ok
}
