package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// peeker is what the inspectors need: bufio.Reader's Peek and Buffered.
type peeker interface {
	Peek(n int) ([]byte, error)
	Buffered() int
}

// peekedConn reads ahead into a pooled buffer while sniffing, then replays
// those bytes before reading the connection directly again; the buffer goes
// back to the pool once replayed, so a long-lived connection holds none.
// CloseWrite is forwarded so half-close still works.
type peekedConn struct {
	net.Conn
	buf    []byte // read but not yet consumed
	pooled *[]byte
}

var peekPool = sync.Pool{New: func() any { b := make([]byte, 0, maxPeek); return &b }}

func newPeekedConn(c net.Conn) *peekedConn {
	bp := peekPool.Get().(*[]byte)
	return &peekedConn{Conn: c, buf: (*bp)[:0], pooled: bp}
}

// Peek returns the next n bytes without consuming them, reading from the
// connection as needed (at most maxPeek bytes in all).
func (p *peekedConn) Peek(n int) ([]byte, error) {
	if n > maxPeek {
		return nil, bufio.ErrBufferFull
	}
	for len(p.buf) < n {
		if p.pooled == nil {
			return p.buf, io.ErrUnexpectedEOF // replay started: no more peeking
		}
		m, err := p.Conn.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+m]
		if err != nil && len(p.buf) < n {
			return p.buf, err
		}
	}
	return p.buf[:n], nil
}

// Buffered is how many bytes have been read ahead.
func (p *peekedConn) Buffered() int { return len(p.buf) }

func (p *peekedConn) Read(b []byte) (int, error) {
	if len(p.buf) == 0 {
		p.release()
		return p.Conn.Read(b)
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.release()
	}
	return n, nil
}

func (p *peekedConn) release() {
	if p.pooled != nil {
		*p.pooled = (*p.pooled)[:0]
		peekPool.Put(p.pooled)
		p.pooled = nil
		p.buf = nil
	}
}

// CloseWrite half-closes the underlying connection when it can.
func (p *peekedConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write not supported")
}

// maxPeek bounds sniffing: one TLS record (16 KiB + header) or an HTTP/1
// request line.
const maxPeek = 16384 + 5

// sniffed is what listener filters learned.
type sniffed struct {
	tls        bool
	serverName string
	alpn       []string // TLS: client offer; plaintext: "http/1.1", "http/1.0" or "h2c"
	timedOut   bool     // the deadline passed before the inspectors could decide
}

// sniff peeks at the first bytes of c until the inspectors decide or the
// deadline passes (timedOut; timeout 0 waits without limit). It never
// consumes bytes.
func sniff(r peeker, c net.Conn, wantTLS, wantHTTP bool, timeout time.Duration) sniffed {
	var out sniffed
	if !wantTLS && !wantHTTP {
		return out
	}
	// listener_filters_timeout 0 means no timeout in Envoy: wait for the
	// first bytes as long as the client keeps the connection open.
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	}
	first, err := r.Peek(1)
	if err != nil {
		out.timedOut = errors.Is(err, os.ErrDeadlineExceeded)
		return out
	}
	if wantTLS && first[0] == 0x16 {
		hdr, err := r.Peek(5)
		if err == nil && hdr[1] == 3 {
			out.tls = true
			n := int(hdr[3])<<8 | int(hdr[4])
			if n > 0 && 5+n <= maxPeek {
				rec, err := r.Peek(5 + n)
				if err == nil {
					out.serverName, out.alpn = parseClientHello(rec)
				}
				out.timedOut = errors.Is(err, os.ErrDeadlineExceeded)
			}
			return out
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			out.timedOut = true
			return out
		}
	}
	if wantHTTP {
		var err error
		out.alpn, err = sniffHTTP(r)
		out.timedOut = errors.Is(err, os.ErrDeadlineExceeded)
	}
	return out
}

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// sniffHTTP reads until it can tell an HTTP/2 preface or an HTTP/1.x
// request line apart from anything else.
func sniffHTTP(r peeker) ([]string, error) {
	for n := 1; n <= 4096; n++ {
		b, err := r.Peek(n)
		if err != nil {
			return nil, err
		}
		if len(b) <= len(h2Preface) && bytes.Equal(b, h2Preface[:len(b)]) {
			if len(b) == len(h2Preface) {
				return []string{"h2c"}, nil
			}
			continue
		}
		// The method is a token of uppercase letters then a space.
		if i := bytes.IndexByte(b, ' '); i < 0 {
			if !isUpperToken(b) {
				return nil, nil
			}
		} else if i == 0 || !isUpperToken(b[:i]) {
			return nil, nil
		}
		if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
			line := b[:i]
			switch {
			case bytes.HasSuffix(line, []byte(" HTTP/1.1")):
				return []string{"http/1.1"}, nil
			case bytes.HasSuffix(line, []byte(" HTTP/1.0")):
				return []string{"http/1.0"}, nil
			}
			return nil, nil
		}
		// Grow the peek by what has already arrived, not byte by byte.
		if bn := r.Buffered(); bn > n {
			n = bn - 1
		}
	}
	return nil, nil
}

func isUpperToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return len(b) <= 16
}

// parseClientHello lets crypto/tls parse the record and reports SNI and
// ALPN from its ClientHelloInfo; the handshake is then abandoned.
func parseClientHello(record []byte) (string, []string) {
	var sni string
	var alpn []string
	errDone := errors.New("hello parsed")
	srv := tls.Server(readOnlyConn{r: bytes.NewReader(record)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = h.ServerName
			alpn = append([]string(nil), h.SupportedProtos...)
			return nil, errDone
		},
	})
	_ = srv.Handshake()
	return sni, alpn
}

// readOnlyConn feeds recorded bytes to crypto/tls and swallows writes.
type readOnlyConn struct {
	net.Conn
	r io.Reader
}

func (c readOnlyConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c readOnlyConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c readOnlyConn) Close() error                     { return nil }
func (c readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (c readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (c readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
func (c readOnlyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c readOnlyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
