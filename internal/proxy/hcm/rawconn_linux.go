package hcm

import (
	"net"
	"syscall"

	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// rawConnOf returns the socket under c when nothing above it buffers
// bytes (a plain TCP connection, possibly behind sniffing wrappers that
// have replayed what they peeked); nil otherwise.
func rawConnOf(c net.Conn) syscall.RawConn {
	t := tcpOf(c)
	if t == nil {
		return nil
	}
	rc, err := t.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tcpOf is the TCP connection under c when nothing above it buffers bytes.
func tcpOf(c net.Conn) *net.TCPConn {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case interface {
			Buffered() int
			NetConn() net.Conn
		}:
			if x.Buffered() > 0 {
				return nil
			}
			c = x.NetConn()
		default:
			return nil
		}
	}
}

// socketReadable reports whether a read on fd would not block (data, EOF
// or an error), without consuming anything.
func socketReadable(fd uintptr, b []byte) bool {
	n, err := sockio.Peek(fd, b)
	return n > 0 || err != syscall.EAGAIN
}
