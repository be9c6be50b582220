// Package listener owns weft-proxy's listening sockets. It compiles xDS
// Listeners (filter chains, listener filters, downstream TLS), binds them,
// and on every config update keeps the sockets whose address is unchanged,
// binds new ones and drains removed ones, so established connections
// survive reloads. Per connection it reads the original destination
// (use_original_dst hand-off), sniffs TLS and HTTP (tls_inspector,
// http_inspector), picks a filter chain in Envoy's order, terminates TLS and
// hands the connection to the chain's network filter.
package listener

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Handler serves one connection after filter chain match (the HTTP
// connection manager or the TCP proxy). ServeConn owns c and returns when
// the connection is done.
type Handler interface {
	ServeConn(c net.Conn, info *downstream.Info)
}

// Chainer is implemented by a non-terminal network filter (RBAC): Chain
// returns the handler that runs it and then hands the connection to next.
type Chainer interface {
	Handler
	Chain(next Handler) Handler
}

// Drainer is optionally implemented by a Handler that can end its
// connections gracefully (HTTP/1 "Connection: close", HTTP/2 GOAWAY) when
// its listener is removed or the proxy shuts down. Connections still open
// when the drain timeout passes are closed.
type Drainer interface {
	Drain()
}

// Retirer is optionally implemented by a Handler that an update of its
// listener replaced: its connections finish what they are doing and close,
// so clients reconnect to the new config (as Envoy drains the filter chains
// an update changed). Unlike Drain, connections it is still handed (accepted
// just before the swap) are served.
type Retirer interface {
	Retire()
}

// IdleCloser is optionally implemented by a Retirer whose connections stay
// open while idle during the drain period Retire starts (Envoy's drain:
// "Connection: close" on the next response, GOAWAY for HTTP/2); CloseIdle
// ends the period and closes the idle ones.
type IdleCloser interface {
	CloseIdle()
}

// Deps gives Compile what lives outside this package.
type Deps interface {
	// NetworkFilter compiles a network filter of a chain (hcm, tcp_proxy).
	NetworkFilter(listener string, f *listenerv3.Filter) (Handler, error)
	// Secret returns an SDS secret by name, nil when unknown.
	Secret(name string) *tlsv3.Secret
}

// Config is a compiled listener; immutable.
type Config struct {
	Name string
	Addr netip.AddrPort // unset for a pipe
	// Pipe is the unix domain socket path of a pipe listener ("@name":
	// Linux's abstract namespace), PipeMode its file mode (0: umask's).
	Pipe     string
	PipeMode uint32
	Bind     bool // false: only reachable by original-dst hand-off
	Source   *listenerv3.Listener

	useOriginalDst bool // hand the connection to the listener owning its original destination
	restoreDst     bool // original_dst listener filter: read it, but no hand-off
	sniffTLS       bool
	sniffHTTP      bool
	peekTimeout    time.Duration // unset: the manager's default; 0 set explicitly: none (Envoy)
	peekTimeoutSet bool
	// continueOnTimeout: serve a connection whose sniffing timed out with
	// what is known; Envoy's default (false) closes it. Istio sets true.
	continueOnTimeout bool
	chains            []*chain
	defaultChain      *chain
}

// Compile validates and compiles one listener. Errors name the listener and
// field.
func Compile(l *listenerv3.Listener, deps Deps) (*Config, error) {
	path := fmt.Sprintf("listener %q", l.GetName())
	if err := xdsfield.Check(l, path, "name", "address", "filter_chains", "default_filter_chain", "use_original_dst",
		"listener_filters", "listener_filters_timeout", "continue_on_listener_filters_timeout", "traffic_direction",
		"bind_to_port", "metadata", "stat_prefix"); err != nil {
		return nil, err
	}
	if l.GetName() == "" {
		return nil, fmt.Errorf("listener without a name")
	}
	if err := xdsfield.Check(l.GetAddress(), path+": address", "socket_address", "pipe"); err != nil {
		return nil, err
	}
	if p := l.GetAddress().GetPipe(); p != nil {
		return compilePipe(l, p, path, deps)
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("%s: address: socket_address or pipe is required", path)
	}
	if err := xdsfield.Check(sa, path+": address.socket_address", "address", "port_value", "protocol"); err != nil {
		return nil, err
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("%s: address.socket_address.protocol: only TCP is supported", path)
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("%s: address.socket_address.address %q: %v", path, sa.GetAddress(), err)
	}
	if sa.GetPortValue() > 65535 {
		return nil, fmt.Errorf("%s: address.socket_address.port_value %d out of range", path, sa.GetPortValue())
	}
	c := &Config{
		Name:           l.GetName(),
		Addr:           netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())),
		Bind:           l.GetBindToPort() == nil || l.GetBindToPort().GetValue(),
		Source:         l,
		useOriginalDst: l.GetUseOriginalDst().GetValue(),

		continueOnTimeout: l.GetContinueOnListenerFiltersTimeout(),
	}
	return c.compileBody(l, path, deps)
}

// compilePipe compiles a listener on a unix domain socket (Envoy's
// address.pipe; Istio's Sidecar egress "bind: unix://PATH"). Such a
// listener is always bound and has no original destination.
func compilePipe(l *listenerv3.Listener, p *corev3.Pipe, path string, deps Deps) (*Config, error) {
	if err := xdsfield.Check(p, path+": address.pipe", "path", "mode"); err != nil {
		return nil, err
	}
	if p.GetPath() == "" || strings.ContainsRune(p.GetPath(), 0) {
		return nil, fmt.Errorf("%s: address.pipe.path %q is not a socket path", path, p.GetPath())
	}
	if p.GetMode() > 0o777 {
		return nil, fmt.Errorf("%s: address.pipe.mode %o out of range", path, p.GetMode())
	}
	if l.GetUseOriginalDst().GetValue() || (l.GetBindToPort() != nil && !l.GetBindToPort().GetValue()) {
		return nil, fmt.Errorf("%s: a pipe listener must bind and cannot use_original_dst", path)
	}
	c := &Config{Name: l.GetName(), Pipe: p.GetPath(), PipeMode: p.GetMode(), Bind: true, Source: l,
		continueOnTimeout: l.GetContinueOnListenerFiltersTimeout()}
	return c.compileBody(l, path, deps)
}

// compileBody compiles what socket and pipe listeners share: listener
// filters and filter chains.
func (c *Config) compileBody(l *listenerv3.Listener, path string, deps Deps) (*Config, error) {
	if t := l.GetListenerFiltersTimeout(); t != nil {
		c.peekTimeout, c.peekTimeoutSet = t.AsDuration(), true
	}
	for i, lf := range l.GetListenerFilters() {
		fp := fmt.Sprintf("%s: listener_filters[%d] (%s)", path, i, lf.GetName())
		if err := xdsfield.Check(lf, fp, "name", "typed_config"); err != nil {
			return nil, err
		}
		tc := lf.GetTypedConfig()
		switch {
		case tc == nil:
			return nil, fmt.Errorf("%s: typed_config is required", fp)
		case tc.MessageIs(&tlsinspv3.TlsInspector{}):
			m := &tlsinspv3.TlsInspector{}
			if err := tc.UnmarshalTo(m); err != nil {
				return nil, fmt.Errorf("%s: %v", fp, err)
			}
			if err := xdsfield.Check(m, fp); err != nil {
				return nil, err
			}
			c.sniffTLS = true
		case tc.MessageIs(&httpinspv3.HttpInspector{}):
			c.sniffHTTP = true
		case tc.MessageIs(&origdstv3.OriginalDst{}):
			// Restores the original destination for filter chain match
			// (destination_port on virtualInbound); no listener hand-off.
			c.restoreDst = true
		default:
			return nil, fmt.Errorf("%s: unsupported listener filter type %s", fp, tc.GetTypeUrl())
		}
	}
	for i, fc := range l.GetFilterChains() {
		ch, err := compileChain(fc, fmt.Sprintf("%s: filter_chains[%d]", path, i), c.Name, deps)
		if err != nil {
			return nil, err
		}
		c.chains = append(c.chains, ch)
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		ch, err := compileChain(d, path+": default_filter_chain", c.Name, deps)
		if err != nil {
			return nil, err
		}
		if ch.match != nil {
			return nil, fmt.Errorf("%s: default_filter_chain: filter_chain_match is not allowed", path)
		}
		c.defaultChain = ch
	}
	if len(c.chains) == 0 && c.defaultChain == nil {
		return nil, fmt.Errorf("%s: no filter chains", path)
	}
	if err := checkDuplicates(c.chains, path); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) allChains() []*chain {
	if c.defaultChain == nil {
		return c.chains
	}
	return append(append([]*chain(nil), c.chains...), c.defaultChain)
}

// drain asks every chain's handler that can to drain.
func (c *Config) drain() {
	for _, ch := range c.allChains() {
		if d, ok := ch.terminal.(Drainer); ok {
			d.Drain()
		}
	}
}

// retireAll retires every handler of c that can retire (StartDrain).
func (c *Config) retireAll() {
	for _, ch := range c.allChains() {
		if r, ok := ch.terminal.(Retirer); ok {
			r.Retire()
		}
	}
}

// closeIdle ends the drain period of every handler of c that has one.
func (c *Config) closeIdle() {
	closeIdle(c.allChains())
}

func closeIdle(chains []*chain) {
	for _, ch := range chains {
		if r, ok := ch.terminal.(IdleCloser); ok {
			r.CloseIdle()
		}
	}
}

// retire tells the handlers of c that next no longer uses to retire, and
// returns their chains (their drain period ends with closeIdle).
func (c *Config) retire(next *Config) (retired []*chain) {
	for _, ch := range c.allChains() {
		r, ok := ch.terminal.(Retirer)
		if !ok {
			continue
		}
		reused := false
		for _, nch := range next.allChains() {
			if nr, ok := nch.terminal.(Retirer); ok && nr == r {
				reused = true
				break
			}
		}
		if !reused {
			r.Retire()
			retired = append(retired, ch)
		}
	}
	return retired
}

// String is the listener's address as Envoy names listeners (ip_port).
func (c *Config) String() string {
	if c.Pipe != "" {
		return "unix://" + c.Pipe
	}
	return c.Addr.Addr().String() + "_" + strconv.Itoa(int(c.Addr.Port()))
}
