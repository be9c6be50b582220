package hcm

import (
	"io"

	"github.com/weftmesh/weft/internal/proxy/sockio"
)

// socketWriter is what the own HTTP/2 server writes its frames to: on a
// plain TCP connection whose reads are batched (h2Conn), the socket with
// raw system calls (sockio). Profile (the bench's client sidecar at
// max-h2c, perf): its writes went through the runtime's syscall hand-off,
// which kept sysmon polling (6.6 % of the CPU, 0.26 nanosleep per
// request against 0.04 on the lean HTTP/1 path) and moved the writer
// between threads. Elsewhere (TLS, sniffed bytes) the connection itself.
func socketWriter(cc *conn, rd io.Reader) io.Writer {
	if batched(rd) {
		if t := tcpOf(cc.Conn); t != nil {
			if s := sockio.New(t); s != nil {
				return s
			}
		}
	}
	return cc.Conn
}
