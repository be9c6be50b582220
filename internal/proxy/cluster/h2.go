package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
)

// HTTP/2 upstream pool: requests multiplex over the host's connections; a
// new connection is opened only when none can take another stream. While
// the first connection is being established, requests wait as pending
// (Envoy's max_pending_requests applies only then for HTTP/2).
//
// Connections come from net/http's own HTTP/2 client (Transport with
// unencrypted HTTP/2 only, i.e. prior knowledge) over a dial function that
// performs TCP and, when configured, our upstream TLS: HTTP/2 framing runs
// over whatever connection h.dial returns.

func (h *host) transportH2() *http.Transport {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h2tr == nil {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		h.h2tr = &http.Transport{
			Protocols:          p,
			DisableCompression: true, // a proxy forwards bodies as they are
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return h.dial(ctx, alpnH2)
			},
		}
	}
	return h.h2tr
}

// getH2 returns a connection with a stream reserved for the caller.
func (h *host) getH2(ctx context.Context) (*h2conn, error) {
	sh := h.sh
	tr := h.transportH2()
	pending := false
	defer func() {
		if pending {
			sh.stats.UpstreamRqPendingActive.Add(-1)
		}
	}()
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, connectFailure(errHostClosed)
		}
		var dead []*h2conn
		live := h.h2[:0]
		var got *h2conn
		for _, c := range h.h2 {
			if c.cc.Err() != nil || c.draining.Load() {
				dead = append(dead, c)
				continue
			}
			live = append(live, c)
			if got == nil && c.admit(sh.cfg) {
				if c.cc.Reserve() == nil {
					got = c
				} else {
					c.streams.Add(-1)
					c.total.Add(-1)
				}
			}
		}
		h.h2 = live
		h.mu.Unlock()
		for _, c := range dead {
			c.drain()
		}
		if got != nil {
			return got, nil
		}
		h.mu.Lock()
		d := h.h2dial
		if d == nil {
			if !sh.reserveConnOr(len(h.h2) == 0) {
				h.mu.Unlock()
				sh.stats.UpstreamCxOverflow.Add(1)
				return nil, overflow()
			}
			d = &h2dialing{done: make(chan struct{})}
			h.h2dial = d
			go h.dialH2(tr, d)
		}
		h.mu.Unlock()
		if !pending {
			if !tryAcquire(&sh.stats.UpstreamRqPendingActive, sh.cfg.maxPending) {
				sh.stats.UpstreamRqPendingOverflow.Add(1)
				return nil, overflow()
			}
			sh.stats.UpstreamRqPendingTotal.Add(1)
			pending = true
		}
		select {
		case <-d.done:
			if d.err != nil {
				return nil, connectFailure(d.err)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (h *host) dialH2(tr *http.Transport, d *h2dialing) {
	cc, err := tr.NewClientConn(h.sh.ctx, "http", h.addr)
	h.mu.Lock()
	h.h2dial = nil
	if err != nil {
		d.err = err
		h.sh.stats.UpstreamCxActive.Add(-1)
	} else {
		d.c = &h2conn{cc: cc, h: h}
		d.c.watch()
		if h.closed {
			h.mu.Unlock()
			d.c.close()
			close(d.done)
			return
		}
		h.h2 = append(h.h2, d.c)
	}
	h.mu.Unlock()
	close(d.done)
}

func (h *host) roundTripH2(req *http.Request, att *Attempt, done func()) (*http.Response, error) {
	ctx := req.Context()
	c, err := h.getH2(ctx)
	if err != nil {
		return nil, err
	}
	r := req
	if req.URL.Scheme == "" || (h.tls != nil) != (req.URL.Scheme == "https") {
		// :scheme follows the upstream transport, like Envoy.
		// A shallow copy, as Request.WithContext makes.
		r2, u := *req, *req.URL
		u.Scheme = "http"
		if h.tls != nil {
			u.Scheme = "https"
		}
		r2.URL = &u
		r = &r2
	}
	resp, err := c.cc.RoundTrip(noDefaultUA(r))
	if err != nil {
		c.finished(h.sh.cfg)
		return nil, err
	}
	resp.Body = &h2body{rc: resp.Body, done: func() { c.finished(h.sh.cfg); done() }}
	if !h.tls.verifies() {
		resp.TLS = nil // only a certificate the cluster verified names the upstream
	}
	return resp, nil
}

// admit takes a stream slot on c under max_concurrent_streams and
// max_requests_per_connection; the caller then reserves the stream.
func (c *h2conn) admit(cfg *settings) bool {
	if cfg.maxRequestsPerConn > 0 && c.total.Load() >= int64(cfg.maxRequestsPerConn) {
		return false
	}
	if cfg.maxStreams > 0 && c.streams.Load() >= int64(cfg.maxStreams) {
		return false
	}
	c.streams.Add(1)
	c.total.Add(1)
	return true
}

// finished releases a stream slot; a connection that served
// max_requests_per_connection streams drains.
func (c *h2conn) finished(cfg *settings) {
	c.streams.Add(-1)
	if cfg.maxRequestsPerConn > 0 && c.total.Load() >= int64(cfg.maxRequestsPerConn) {
		c.drain()
	}
}

type h2body struct {
	rc   io.ReadCloser
	done func()
	once sync.Once
}

func (b *h2body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *h2body) Close() error {
	err := b.rc.Close()
	b.once.Do(b.done)
	return err
}
