package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// Options configures a Manager.
type Options struct {
	Log *slog.Logger
	// PeekTimeout bounds protocol sniffing when a listener sets no
	// listener_filters_timeout (default 5s).
	PeekTimeout time.Duration
	// DrainTimeout is how long connections of a removed listener may
	// finish before they are closed (default 5s).
	DrainTimeout time.Duration
	// HandshakeTimeout bounds downstream TLS handshakes (default 10s).
	HandshakeTimeout time.Duration
	// OriginalDst reads a connection's pre-redirect destination (default:
	// SO_ORIGINAL_DST). Tests inject their own.
	OriginalDst func(net.Conn) (netip.AddrPort, error)
	// PortMap binds listeners configured on a port (key) at another port
	// (value), e.g. a gateway's 8080 on 18080 where 8080 is taken. The
	// configured address still names the listener for original-dst hand-off.
	PortMap map[uint16]uint16
}

// Manager owns the bound listeners. Update and Close may be called from
// any goroutine; connections are served on their own goroutines.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	live   map[string]*socket // by socket key
	closed bool
	// draining (StartDrain): every config, present and future, is retired.
	draining bool
	// drainingIn (DrainInbound): inbound configs, present and future, are retired.
	drainingIn bool
	// byAddr indexes every listener, bound or not, for original-dst
	// hand-off; replaced on Update.
	byAddr atomic.Pointer[map[netip.AddrPort]*Config]

	noChain       atomic.Int64
	sniffTimeouts atomic.Int64
}

type socket struct {
	key  string
	ln   net.Listener
	cfg  atomic.Pointer[Config]
	done chan struct{} // closed when the accept loop exits

	accepted atomic.Int64

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	drained  chan struct{} // closed when draining and the last conn ends
	draining bool
}

// ListenerStats are per bound listener counters (Envoy's
// listener.<address>.downstream_cx_total / downstream_cx_active).
type ListenerStats struct {
	Name               string
	Addr               string
	DownstreamCxTotal  int64
	DownstreamCxActive int64
}

// Stats lists bound listeners' counters, sorted by name.
func (m *Manager) Stats() []ListenerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ListenerStats, 0, len(m.live))
	for _, s := range m.live {
		s.mu.Lock()
		active := len(s.conns)
		s.mu.Unlock()
		out = append(out, ListenerStats{Name: s.cfg.Load().Name, Addr: s.ln.Addr().String(),
			DownstreamCxTotal: s.accepted.Load(), DownstreamCxActive: int64(active)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NewManager returns a Manager with no listeners.
func NewManager(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.PeekTimeout <= 0 {
		opts.PeekTimeout = 5 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.OriginalDst == nil {
		opts.OriginalDst = OriginalDst
	}
	m := &Manager{opts: opts, log: opts.Log, live: map[string]*socket{}}
	empty := map[netip.AddrPort]*Config{}
	m.byAddr.Store(&empty)
	return m
}

func socketKey(c *Config) string {
	if c.Pipe != "" {
		return "unix:" + c.Pipe
	}
	if c.Addr.Port() == 0 {
		// An ephemeral port is only "the same address" for the same listener.
		return c.Name + "@" + c.Addr.String()
	}
	return c.Addr.String()
}

// Update makes cfgs the set of listeners. A listener whose address is
// already bound keeps its socket and open connections and serves new ones
// with the new config; new addresses are bound; listeners no longer present
// stop accepting and their connections drain. If any address cannot be
// bound nothing changes and the error names the listener.
func (m *Manager) Update(cfgs []*Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("listener manager closed")
	}
	index := map[netip.AddrPort]*Config{}
	want := map[string]*Config{}
	for _, c := range cfgs {
		if c.Addr.Port() != 0 {
			if prev, dup := index[c.Addr]; dup {
				return fmt.Errorf("listener %q: address %s is also used by listener %q", c.Name, c.Addr, prev.Name)
			}
			index[c.Addr] = c
		}
		if c.Bind {
			want[socketKey(c)] = c
		}
	}
	var fresh []*socket
	for key, c := range want {
		if m.live[key] != nil {
			continue
		}
		var ln net.Listener
		var err error
		where := c.Pipe
		if c.Pipe != "" {
			ln, err = ListenPipe(c.Pipe, c.PipeMode)
		} else {
			bind := c.Addr
			if p, ok := m.opts.PortMap[bind.Port()]; ok {
				bind = netip.AddrPortFrom(bind.Addr(), p)
			}
			where = bind.String()
			ln, err = Listen(where)
		}
		if err != nil {
			for _, s := range fresh {
				s.ln.Close()
			}
			return fmt.Errorf("listener %q: binding %s: %w", c.Name, where, err)
		}
		s := &socket{key: key, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
		s.cfg.Store(c)
		fresh = append(fresh, s)
	}
	m.byAddr.Store(&index)
	for key, s := range m.live {
		if c, ok := want[key]; ok {
			if old := s.cfg.Swap(c); old != nil && old != c {
				if retired := old.retire(c); len(retired) > 0 {
					// The drain period of the replaced connection managers.
					time.AfterFunc(m.opts.DrainTimeout, func() { closeIdle(retired) })
				}
			}
			continue
		}
		delete(m.live, key)
		m.log.Info("removing listener", "listener", s.cfg.Load().Name, "addr", key)
		go m.drain(s, m.opts.DrainTimeout)
	}
	for _, s := range fresh {
		m.live[s.key] = s
		m.log.Info("listening", "listener", s.cfg.Load().Name, "addr", s.ln.Addr().String())
		go m.accept(s)
	}
	for _, c := range cfgs {
		if m.draining || (m.drainingIn && c.Inbound()) {
			c.retireAll()
		}
	}
	return nil
}

// StartDrain puts the proxy in draining mode for a graceful shutdown, as
// Envoy's graceful drain: every listener keeps accepting and serving, but
// HTTP/1 connections end after their next response (Connection: close)
// and HTTP/2 ones get GOAWAY, so clients move to other endpoints while the
// control plane withdraws this one; idle connections stay open for the
// drain period. Later updates drain too. CloseIdle or Close ends it.
func (m *Manager) StartDrain() {
	m.mu.Lock()
	m.draining = true
	var cfgs []*Config
	for _, s := range m.live {
		cfgs = append(cfgs, s.cfg.Load())
	}
	if idx := m.byAddr.Load(); idx != nil {
		for _, c := range *idx {
			cfgs = append(cfgs, c)
		}
	}
	m.mu.Unlock()
	for _, c := range cfgs {
		c.retireAll()
	}
}

// CloseIdle ends the drain period StartDrain began: connections idle now
// close (busy ones after their response); listeners keep accepting.
func (m *Manager) CloseIdle() {
	m.mu.Lock()
	var cfgs []*Config
	for _, s := range m.live {
		cfgs = append(cfgs, s.cfg.Load())
	}
	m.mu.Unlock()
	for _, c := range cfgs {
		c.closeIdle()
	}
}

// Addr returns the bound address of a listener by name (useful with port 0).
func (m *Manager) Addr(name string) (net.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.live {
		if s.cfg.Load().Name == name {
			return s.ln.Addr(), true
		}
	}
	return nil, false
}

// Names lists bound listeners, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, s := range m.live {
		out = append(out, s.cfg.Load().Name)
	}
	sort.Strings(out)
	return out
}

// NoChainMatches counts connections closed because no filter chain matched.
func (m *Manager) NoChainMatches() int64 { return m.noChain.Load() }

// SniffTimeouts counts connections closed because listener filters timed
// out (Envoy's downstream_pre_cx_timeout).
func (m *Manager) SniffTimeouts() int64 { return m.sniffTimeouts.Load() }

// StopAccepting closes every listening socket; open connections go on.
func (m *Manager) StopAccepting() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.live {
		s.ln.Close()
	}
}

// Close stops accepting and waits for open connections until ctx ends,
// then closes those still open.
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	live := m.live
	m.live = map[string]*socket{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ln.Close()
			m.waitOrClose(ctx, s)
		}()
	}
	wg.Wait()
}

func (m *Manager) drain(s *socket, timeout time.Duration) {
	s.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m.waitOrClose(ctx, s)
}

// waitOrClose waits for the socket's connections to end, closing the
// stragglers when ctx ends.
func (m *Manager) waitOrClose(ctx context.Context, s *socket) {
	<-s.done
	s.cfg.Load().drain()
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		s.drained = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	s.mu.Unlock()
	select {
	case <-drained:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		// Closing ends every connection's goroutine, unless a filter
		// ignores its closed connection; do not hang shutdown on that.
		select {
		case <-drained:
		case <-time.After(time.Second):
			m.log.Warn("connections still being served after close", "listener", s.cfg.Load().Name)
		}
	}
}

func (m *Manager) accept(s *socket) {
	defer close(s.done)
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed", "listener", s.cfg.Load().Name, "err", err, "retry", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.accepted.Add(1)
		go func() {
			detached := false
			forget := func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				if s.draining && len(s.conns) == 0 {
					close(s.drained)
				}
				s.mu.Unlock()
			}
			defer func() {
				// A bug in a network filter ends this connection, not the proxy.
				if p := recover(); p != nil {
					m.log.Error("panic serving connection", "listener", s.cfg.Load().Name, "panic", p, "stack", string(debug.Stack()))
				}
				if !detached {
					forget()
				}
			}()
			m.serve(s.cfg.Load(), c, func() func() {
				detached = true
				return forget // called exactly once (downstream.Info.Detach)
			})
		}()
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// serve hands an accepted connection to the listener owning its original
// destination (if use_original_dst), then dispatches it.
func (m *Manager) serve(cfg *Config, c net.Conn, detach func() func()) {
	info := &downstream.Info{Listener: cfg.Name, Local: addrPort(c.LocalAddr()), Remote: addrPort(c.RemoteAddr()), Detach: detach}
	info.OriginalDst = info.Local
	if cfg.useOriginalDst || cfg.restoreDst {
		od, err := m.opts.OriginalDst(c)
		if err != nil {
			m.log.Debug("no original destination", "listener", cfg.Name, "err", err)
		} else if od.IsValid() {
			info.OriginalDst = od
			if t := m.owner(od); cfg.useOriginalDst && t != nil && t != cfg {
				cfg = t
				info.Listener = t.Name
			}
		}
	}
	m.Dispatch(cfg, c, info)
}

// owner finds the listener for an original destination with Envoy's
// precedence: exact ip:port, then the wildcard 0.0.0.0:port (or [::]:port).
func (m *Manager) owner(dst netip.AddrPort) *Config {
	idx := *m.byAddr.Load()
	if c := idx[dst]; c != nil {
		return c
	}
	any := netip.IPv4Unspecified()
	if dst.Addr().Is6() {
		any = netip.IPv6Unspecified()
	}
	return idx[netip.AddrPortFrom(any, dst.Port())]
}

// Dispatch runs listener filters (sniffing), picks the filter chain,
// terminates TLS if the chain says so and serves c with the chain's
// network filter. info must have Local, Remote and OriginalDst set. It
// returns when the connection is done; c is closed by then or by the caller.
func (m *Manager) Dispatch(cfg *Config, c net.Conn, info *downstream.Info) {
	var conn net.Conn = c
	var sn sniffed
	if cfg.sniffTLS || cfg.sniffHTTP {
		timeout := cfg.peekTimeout
		if !cfg.peekTimeoutSet {
			timeout = m.opts.PeekTimeout
		}
		pc := newPeekedConn(c)
		sn = sniff(pc, c, cfg.sniffTLS, cfg.sniffHTTP, timeout)
		conn = pc
		if sn.timedOut && !cfg.continueOnTimeout {
			m.sniffTimeouts.Add(1)
			m.log.Debug("listener filters timed out; closing (continue_on_listener_filters_timeout is false)",
				"listener", cfg.Name, "src", info.Remote)
			pc.release()
			c.Close()
			return
		}
	}
	facts := &connFacts{dst: info.OriginalDst, src: info.Remote, serverName: sn.serverName, transport: "raw_buffer", alpn: sn.alpn}
	if sn.tls {
		facts.transport = "tls"
	}
	ch := selectChain(cfg.chains, cfg.defaultChain, facts)
	if ch == nil {
		m.noChain.Add(1)
		m.log.Debug("no matching filter chain", "listener", cfg.Name, "flags", rflag.NR.String(),
			"dst", info.OriginalDst, "src", info.Remote, "sni", sn.serverName, "alpn", sn.alpn)
		c.Close()
		return
	}
	info.FilterChain = ch.name
	info.ServerName = sn.serverName
	info.ALPN = sn.alpn
	switch {
	case sn.tls:
		info.Protocol = downstream.TLS
	case len(sn.alpn) > 0 && sn.alpn[0] == "h2c":
		info.Protocol = downstream.HTTP2
	case len(sn.alpn) > 0:
		info.Protocol = downstream.HTTP1
	case cfg.sniffHTTP:
		info.Protocol = downstream.RawTCP
	}
	if ch.tls != nil {
		tc := tls.Server(conn, ch.tls)
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			m.log.Debug("downstream tls handshake failed", "listener", cfg.Name, "src", info.Remote, "err", err)
			c.Close()
			return
		}
		st := tc.ConnectionState()
		info.TLS = &st
		info.LocalCert = localCert(ch.tls)
		info.ServerName = st.ServerName
		info.ALPN = nil
		info.Protocol = downstream.Unknown
		if p := st.NegotiatedProtocol; p != "" {
			info.ALPN = []string{p}
			switch p {
			case "h2":
				info.Protocol = downstream.HTTP2
			case "http/1.1", "http/1.0":
				info.Protocol = downstream.HTTP1
			}
		}
		conn = tc
	}
	ch.handler.ServeConn(conn, info)
}

// localCert is the leaf this listener presents (the first certificate, as
// chains hold one).
func localCert(cfg *tls.Config) *x509.Certificate {
	if len(cfg.Certificates) == 0 {
		return nil
	}
	c := cfg.Certificates[0]
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
