//go:build unix

package cluster

import (
	"net"
	"syscall"

	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// peeker looks at a pooled connection's socket without reading it: the
// upstream closed it (EOF, reset) or sent something while it sat idle.
// Built once per connection so a check allocates nothing.
type peeker struct {
	rc    syscall.RawConn
	buf   [1]byte
	state int8 // result of the last peek: peekIdle, peekData, peekClosed
	fn    func(fd uintptr)
}

const (
	peekIdle int8 = iota
	peekData
	peekClosed
)

func newPeeker(nc net.Conn) *peeker {
	raw := nc
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		raw = u.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = func(fd uintptr) {
		n, err := sockio.Peek(fd, p.buf[:])
		switch {
		case n > 0:
			p.state = peekData
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
			p.state = peekIdle
		default: // 0 bytes: the peer's FIN; or ECONNRESET and friends
			p.state = peekClosed
		}
	}
	return p
}

// peek reports the socket's state with one non-blocking MSG_PEEK.
func (p *peeker) peek() int8 {
	if p == nil {
		return peekIdle // not a socket we can look at: assume alive
	}
	if err := p.rc.Control(p.fn); err != nil {
		return peekClosed
	}
	return p.state
}
