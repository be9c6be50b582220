package hcm

import (
	"syscall"

	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// hungUp waits, holding no buffer, on the socket of a connection whose
// request is being served until the client hangs up or the connection
// breaks (true), sends more bytes (false: they stay in the socket for the
// next request), or a read deadline ends the wait (false). Issue 17: the
// hang-up watcher of a request waiting for its upstream held a 4 KiB read
// buffer for it.
func hungUp(rc syscall.RawConn) bool {
	var one [1]byte
	gone := false
	err := rc.Read(func(fd uintptr) bool {
		n, errno := sockio.Peek(fd, one[:])
		switch errno {
		case syscall.EAGAIN:
			return false // nothing yet: wait in the poller
		case syscall.ENOSYS:
			return true // cannot tell: stop watching
		}
		gone = n == 0 // the client's FIN, or a reset
		return true
	})
	return gone || (err != nil && !isTimeout(err))
}

// hungUpOne is hungUp for a connection that cannot be watched on its
// socket (TLS, or bytes held above the socket): it reads at most one byte,
// without a buffer, and keeps it for the next request (as await does).
func (fc *fastConn) hungUpOne() bool {
	n, err := fc.cc.Read(fc.src.one[:])
	if n == 1 {
		fc.src.pending = true
		return false
	}
	return err != nil && !isTimeout(err)
}
