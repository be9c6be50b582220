// Package nc is a small netcat for sample clients: it copies stdin to a TCP
// connection and the connection to stdout, half-closing when stdin ends (so
// `echo hi | weft sample nc tcp-echo:9000` prints the echo and exits). With
// a proxy it tunnels through HTTP CONNECT, which is how an app reaches TCP
// services through its sidecar in explicit mode.
package nc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Options configure a session.
type Options struct {
	Address string // host:port
	Proxy   string // host:port of an HTTP proxy to CONNECT through ("" dials directly)
	Timeout time.Duration
}

// Run connects and copies until the peer closes. It returns an error if the
// connection (or the CONNECT tunnel) could not be made.
func Run(ctx context.Context, o Options, stdin io.Reader, stdout io.Writer) error {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	c, err := Dial(ctx, o)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	go func() {
		io.Copy(c, stdin)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	_, err = io.Copy(stdout, c)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Dial opens the connection, through the proxy's CONNECT when set.
func Dial(ctx context.Context, o Options) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.Timeout}
	if o.Proxy == "" {
		return d.DialContext(ctx, "tcp", o.Address)
	}
	c, err := d.DialContext(ctx, "tcp", o.Proxy)
	if err != nil {
		return nil, fmt.Errorf("connecting to proxy: %w", err)
	}
	c.SetDeadline(time.Now().Add(o.Timeout))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", o.Address, o.Address)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading CONNECT response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		c.Close()
		return nil, fmt.Errorf("proxy refused CONNECT %s: %s", o.Address, resp.Status)
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// bufferedConn keeps bytes the proxy sent right after its CONNECT answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
