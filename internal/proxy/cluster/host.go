package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// host is one upstream endpoint with its connection pool and passive
// health state. A host is shared by every Cluster (across Sets) that lists
// it with the same transport; refs counts them and the last release closes
// the pool.
type host struct {
	addr string // ip:port, or name:port for LOGICAL_DNS / ORIGINAL_DST by name
	sh   *shared
	tls  *tlsSettings
	// resolve, when set, resolves addr at each new connection (LOGICAL_DNS,
	// ORIGINAL_DST by name).
	resolve bool

	refs   atomic.Int32
	active atomic.Int64 // in-flight requests (least request)
	rqTot  atomic.Uint64
	rqErr  atomic.Uint64
	cxTot  atomic.Uint64
	cxAct  atomic.Int64
	od     hostOutlier

	mu      sync.Mutex
	closed  bool
	conns   int             // HTTP/1 connections open or opening
	idle    []*h1conn       // LIFO
	waiters []*waiter       // pending requests, FIFO
	h2      []*h2conn       // HTTP/2 connections
	h2dial  *h2dialing      // in-progress HTTP/2 dial shared by concurrent requests
	h2tr    *http.Transport // created on first HTTP/2 use
}

func newHost(sh *shared, addr string, t *tlsSettings, resolve bool) *host {
	return &host{sh: sh, addr: addr, tls: t, resolve: resolve}
}

func (h *host) acquire() { h.refs.Add(1) }

func (h *host) release() {
	if h.refs.Add(-1) == 0 {
		h.close()
	}
}

// close drains the host: idle connections close now, busy ones when their
// request ends. TCP proxy connections are left to their owner, as in Envoy
// (a cluster update must not cut long-lived TCP sessions).
func (h *host) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	idle := h.idle
	h.idle = nil
	waiters := h.waiters
	h.waiters = nil
	h2 := h.h2
	h.h2 = nil
	h.mu.Unlock()
	for _, c := range idle {
		h.dropH1(c)
	}
	for _, w := range waiters {
		h.sh.stats.UpstreamRqPendingActive.Add(-1)
		w.ch <- connResult{err: errHostClosed}
	}
	for _, c := range h2 {
		c.drain()
	}
}

var errHostClosed = errors.New("upstream host removed")

// dial opens a transport connection to the host (TCP, then TLS when
// configured), counted in the cluster's connection stats. use selects the
// default ALPN offered when the config sets none.
func (h *host) dial(ctx context.Context, use alpnUse) (net.Conn, error) {
	sh := h.sh
	ctx, cancel := context.WithTimeout(ctx, sh.cfg.connectTimeout)
	defer cancel()
	addr := h.addr
	if h.resolve {
		a, err := sh.resolveOne(ctx, addr)
		if err != nil {
			sh.stats.UpstreamCxConnectFail.Add(1)
			return nil, err
		}
		addr = a
	}
	nc, err := sh.opts.Dialer(ctx, "tcp", addr)
	if err == nil {
		if tc, ok := nc.(*net.TCPConn); ok && sh.cfg.keepAlive > 0 {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: sh.cfg.keepAlive})
		}
		nc, err = h.tls.handshake(ctx, nc, use)
	}
	if err != nil {
		sh.stats.UpstreamCxConnectFail.Add(1)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			sh.stats.UpstreamCxConnectTimeout.Add(1)
		}
		return nil, err
	}
	sh.stats.UpstreamCxTotal.Add(1)
	h.cxTot.Add(1)
	h.cxAct.Add(1)
	return nc, nil
}

// connClosed accounts a closed upstream connection.
func (h *host) connClosed() {
	h.cxAct.Add(-1)
	h.sh.stats.UpstreamCxActive.Add(-1)
	h.sh.stats.UpstreamCxDestroy.Add(1)
}

// h2conn is one HTTP/2 client connection.
type h2conn struct {
	cc       *http.ClientConn
	once     sync.Once
	h        *host
	draining atomic.Bool
	streams  atomic.Int64 // active streams we admitted
	total    atomic.Int64 // streams ever admitted
}

// watch keeps accounting right when the connection dies and closes it
// once drained.
func (c *h2conn) watch() {
	c.cc.SetStateHook(func(cc *http.ClientConn) {
		// The hook may run inside RoundTrip or Body.Close: close elsewhere.
		if cc.Err() != nil || (c.draining.Load() && cc.InFlight() == 0) {
			go c.close()
		}
	})
}

// drain lets in-flight streams finish, then closes (Set.Close semantics).
func (c *h2conn) drain() {
	c.draining.Store(true)
	if c.cc.InFlight() == 0 {
		c.close()
	}
}

func (c *h2conn) close() {
	c.once.Do(func() {
		c.cc.Close()
		c.h.connClosed()
	})
}

type h2dialing struct {
	done chan struct{}
	c    *h2conn
	err  error
}
