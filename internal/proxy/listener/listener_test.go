package listener

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/downstream"
)

// tagHandler answers with its tag and what the listener learned, then echoes.
type tagHandler struct{ tag string }

func (h tagHandler) ServeConn(c net.Conn, info *downstream.Info) {
	fmt.Fprintf(c, "%s listener=%s sni=%s proto=%d tls=%v\n", h.tag, info.Listener, info.ServerName, info.Protocol, info.TLS != nil)
	_, _ = io.Copy(c, c)
}

type fakeDeps struct{ secrets map[string]*tlsv3.Secret }

// Filters are named "tag:<x>"; the handler answers with x.
func (fakeDeps) NetworkFilter(_ string, f *listenerv3.Filter) (Handler, error) {
	tag, ok := strings.CutPrefix(f.GetName(), "tag:")
	if !ok {
		return nil, fmt.Errorf("unknown filter %s", f.GetName())
	}
	return tagHandler{tag}, nil
}

func (d fakeDeps) Secret(name string) *tlsv3.Secret { return d.secrets[name] }

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func fc(tag string, m *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Name: tag, FilterChainMatch: m, Filters: []*listenerv3.Filter{{Name: "tag:" + tag}}}
}

func cidr(p string, n uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: p, PrefixLen: wrapperspb.UInt32(n)}
}

func inspectors(tlsToo, httpToo bool) []*listenerv3.ListenerFilter {
	var out []*listenerv3.ListenerFilter
	if tlsToo {
		a, _ := anypb.New(&tlsinspv3.TlsInspector{})
		out = append(out, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}})
	}
	if httpToo {
		a, _ := anypb.New(&httpinspv3.HttpInspector{})
		out = append(out, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.http_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}})
	}
	return out
}

func TestFilterChainMatch(t *testing.T) {
	l := &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("0.0.0.0", 15006),
		FilterChains: []*listenerv3.FilterChain{
			fc("port9080", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080)}),
			fc("port9080-tls", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "tls"}),
			fc("port9080-tls-istio", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "tls", ApplicationProtocols: []string{"istio-http/1.1", "istio"}}),
			fc("port443-exact", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"api.example.com"}}),
			fc("port443-wild", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"*.example.com"}}),
			fc("port443-wild-deeper", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"*.b.example.com"}}),
			fc("net10", &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{cidr("10.0.0.0", 8)}}),
			fc("net10-1", &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{cidr("10.1.0.0", 16)}}),
			fc("src-192", &listenerv3.FilterChainMatch{SourcePrefixRanges: []*corev3.CidrRange{cidr("192.168.0.0", 16)}}),
			fc("http", &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"http/1.1", "h2c"}}),
			fc("catchall", nil),
		},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "default", Filters: []*listenerv3.Filter{{Name: "tag:default"}}},
	}
	cfg, err := Compile(l, fakeDeps{})
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name  string
		facts connFacts
		want  string
	}{
		{"port wins", connFacts{dst: ap("1.2.3.4:9080"), src: ap("5.6.7.8:1"), transport: "raw_buffer"}, "port9080"},
		{"port then transport", connFacts{dst: ap("1.2.3.4:9080"), src: ap("5.6.7.8:1"), transport: "tls"}, "port9080-tls"},
		{"port, transport, alpn", connFacts{dst: ap("1.2.3.4:9080"), src: ap("5.6.7.8:1"), transport: "tls", alpn: []string{"istio", "h2"}}, "port9080-tls-istio"},
		{"exact sni beats wildcard", connFacts{dst: ap("1.2.3.4:443"), serverName: "api.example.com", transport: "tls"}, "port443-exact"},
		{"wildcard sni", connFacts{dst: ap("1.2.3.4:443"), serverName: "www.example.com", transport: "tls"}, "port443-wild"},
		{"longest wildcard", connFacts{dst: ap("1.2.3.4:443"), serverName: "x.b.example.com", transport: "tls"}, "port443-wild-deeper"},
		{"sni case-insensitive", connFacts{dst: ap("1.2.3.4:443"), serverName: "API.example.com", transport: "tls"}, "port443-exact"},
		// Port 443 chains all list names: another name does not fall back to
		// chains without a port (Envoy does not backtrack).
		{"no backtracking", connFacts{dst: ap("1.2.3.4:443"), serverName: "other.org", transport: "tls"}, "default"},
		{"longest prefix", connFacts{dst: ap("10.1.2.3:80"), transport: "raw_buffer"}, "net10-1"},
		{"shorter prefix", connFacts{dst: ap("10.2.2.3:80"), transport: "raw_buffer"}, "net10"},
		{"source prefix", connFacts{dst: ap("1.2.3.4:80"), src: ap("192.168.1.1:5"), transport: "raw_buffer"}, "src-192"},
		{"alpn sniffed http", connFacts{dst: ap("1.2.3.4:80"), src: ap("5.6.7.8:1"), transport: "raw_buffer", alpn: []string{"h2c"}}, "http"},
		{"catch-all", connFacts{dst: ap("1.2.3.4:80"), src: ap("5.6.7.8:1"), transport: "raw_buffer"}, "catchall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := selectChain(cfg.chains, cfg.defaultChain, &tc.facts)
			if got == nil || got.name != tc.want {
				name := "<nil>"
				if got != nil {
					name = got.name
				}
				t.Fatalf("got chain %s, want %s", name, tc.want)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"unsupported listener field", &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", 1), PerConnectionBufferLimitBytes: wrapperspb.UInt32(1),
			FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, "per_connection_buffer_limit_bytes"},
		{"unsupported match field", &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", 1),
			FilterChains: []*listenerv3.FilterChain{fc("a", &listenerv3.FilterChainMatch{AddressSuffix: "x"})}}, "address_suffix"},
		{"duplicate matches", &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", 1),
			FilterChains: []*listenerv3.FilterChain{fc("a", nil), fc("b", nil)}}, "same filter_chain_match"},
		{"bad address", &listenerv3.Listener{Name: "l", Address: sockAddr("nope", 1),
			FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, "address"},
		{"missing sds secret", &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", 1),
			FilterChains: []*listenerv3.FilterChain{withTLS(fc("a", nil), "cert")}}, `secret "cert"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.l, fakeDeps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `listener "l"`) {
				t.Fatalf("err = %v, want it to name the listener and %q", err, tc.want)
			}
		})
	}
}

func withTLS(c *listenerv3.FilterChain, secret string) *listenerv3.FilterChain {
	d := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"h2", "http/1.1"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: secret}}}}
	a, _ := anypb.New(d)
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
	return c
}

// pipeConn is one end of a real loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); ch <- c }()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		send     func(c net.Conn)
		wantTLS  bool
		wantSNI  string
		wantALPN string
	}{
		{"tls client hello", func(c net.Conn) {
			go tls.Client(c, &tls.Config{ServerName: "reviews.default.svc", NextProtos: []string{"istio", "h2"}}).Handshake()
		}, true, "reviews.default.svc", "istio"},
		{"http/1.1", func(c net.Conn) { io.WriteString(c, "GET /productpage HTTP/1.1\r\nHost: x\r\n\r\n") }, false, "", "http/1.1"},
		{"http/1.0 split", func(c net.Conn) {
			io.WriteString(c, "POST /x HT")
			time.Sleep(10 * time.Millisecond)
			io.WriteString(c, "TP/1.0\r\n")
		}, false, "", "http/1.0"},
		{"h2 preface", func(c net.Conn) { io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") }, false, "", "h2c"},
		{"binary", func(c net.Conn) { c.Write([]byte{0, 1, 2, 3, '\r', '\n'}) }, false, "", ""},
		{"lowercase method", func(c net.Conn) { io.WriteString(c, "get / HTTP/1.1\r\n") }, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tcpPair(t)
			tc.send(client)
			br := newPeekedConn(server)
			got := sniff(br, server, true, true, 2*time.Second)
			if got.tls != tc.wantTLS || got.serverName != tc.wantSNI {
				t.Fatalf("got %+v", got)
			}
			first := ""
			if len(got.alpn) > 0 {
				first = got.alpn[0]
			}
			if first != tc.wantALPN {
				t.Fatalf("alpn %v, want first %q", got.alpn, tc.wantALPN)
			}
			// Nothing was consumed.
			if br.Buffered() == 0 {
				t.Fatal("sniffing consumed nothing visible")
			}
		})
	}
	t.Run("server first times out", func(t *testing.T) {
		_, server := tcpPair(t)
		start := time.Now()
		got := sniff(newPeekedConn(server), server, true, true, 100*time.Millisecond)
		if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
			t.Fatalf("sniff took %v", el)
		}
		if got.tls || len(got.alpn) > 0 || !got.timedOut {
			t.Fatalf("got %+v from silence", got)
		}
	})
}

// TestServerFirstOnSniffedPort: a client that waits for the server's
// greeting is served after listener_filters_timeout when
// continue_on_listener_filters_timeout is set (Istio), else closed (Envoy's
// default).
func TestServerFirstOnSniffedPort(t *testing.T) {
	for _, cont := range []bool{true, false} {
		m := NewManager(Options{})
		l := &listenerv3.Listener{Name: "sniffed", Address: sockAddr("127.0.0.1", 0), ListenerFilters: inspectors(true, true),
			ListenerFiltersTimeout: durationpb.New(100 * time.Millisecond), ContinueOnListenerFiltersTimeout: cont,
			FilterChains: []*listenerv3.FilterChain{fc("tcp", nil)}}
		if err := m.Update([]*Config{compile(t, l, fakeDeps{})}); err != nil {
			t.Fatal(err)
		}
		addr, _ := m.Addr("sniffed")
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if cont && !strings.HasPrefix(line, "tcp ") {
			t.Errorf("continue: got %q, %v; want the server-first greeting", line, err)
		}
		if !cont && (err == nil || m.SniffTimeouts() != 1) {
			t.Errorf("no continue: got %q, %v (timeouts %d); want the connection closed", line, err, m.SniffTimeouts())
		}
		m.Close(context.Background())
	}
}

func TestPeekedConnReplays(t *testing.T) {
	client, server := tcpPair(t)
	go func() {
		io.WriteString(client, "hello ")
		io.WriteString(client, strings.Repeat("x", 100000))
		client.(*net.TCPConn).CloseWrite()
	}()
	pc := newPeekedConn(server)
	b, err := pc.Peek(5)
	if err != nil || string(b) != "hello" {
		t.Fatalf("peek %q %v", b, err)
	}
	if _, err := pc.Peek(maxPeek + 1); err == nil {
		t.Fatal("peek beyond the limit")
	}
	all, err := io.ReadAll(pc)
	if err != nil || string(all) != "hello "+strings.Repeat("x", 100000) {
		t.Fatalf("replay lost or reordered bytes: %d bytes, %v", len(all), err)
	}
	if pc.pooled != nil {
		t.Fatal("peek buffer not returned after replay")
	}
}

// readLine reads the tag line a tagHandler sends.
func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading from proxy: %v", err)
	}
	return strings.TrimSpace(line)
}

func compile(t *testing.T, l *listenerv3.Listener, deps Deps) *Config {
	t.Helper()
	c, err := Compile(l, deps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUpdateKeepsConnections(t *testing.T) {
	m := NewManager(Options{DrainTimeout: 200 * time.Millisecond})
	defer m.Close(context.Background())
	port := freePort(t)
	mk := func(tag string) *Config {
		return compile(t, &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{fc(tag, nil)}}, fakeDeps{})
	}
	if err := m.Update([]*Config{mk("v1")}); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	old, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := readLine(t, old); !strings.HasPrefix(got, "v1 ") {
		t.Fatalf("got %q", got)
	}
	if err := m.Update([]*Config{mk("v2")}); err != nil {
		t.Fatal(err)
	}
	// The established connection still works, on the old chain.
	echo(t, old, "still here")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := readLine(t, nc); !strings.HasPrefix(got, "v2 ") {
		t.Fatalf("new connection got %q, want v2", got)
	}
	// Add a second listener and then remove the first: it stops
	// accepting and its connections drain (closed after the timeout).
	port2 := freePort(t)
	other := compile(t, &listenerv3.Listener{Name: "other", Address: sockAddr("127.0.0.1", port2), FilterChains: []*listenerv3.FilterChain{fc("o", nil)}}, fakeDeps{})
	if err := m.Update([]*Config{mk("v2"), other}); err != nil {
		t.Fatal(err)
	}
	if err := m.Update([]*Config{other}); err != nil {
		t.Fatal(err)
	}
	echo(t, nc, "draining but alive")
	meshtest.WaitFor(t, "listener socket closed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("drained connection not closed after the drain timeout")
	}
	if got := m.Names(); len(got) != 1 || got[0] != "other" {
		t.Fatalf("names %v", got)
	}
}

func TestUpdateBindFailureChangesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m := NewManager(Options{})
	defer m.Close(context.Background())
	good := compile(t, &listenerv3.Listener{Name: "good", Address: sockAddr("127.0.0.1", 0), FilterChains: []*listenerv3.FilterChain{fc("g", nil)}}, fakeDeps{})
	if err := m.Update([]*Config{good}); err != nil {
		t.Fatal(err)
	}
	bad := compile(t, &listenerv3.Listener{Name: "bad", Address: sockAddr("127.0.0.1", uint32(busy.Addr().(*net.TCPAddr).Port)), FilterChains: []*listenerv3.FilterChain{fc("b", nil)}}, fakeDeps{})
	err = m.Update([]*Config{bad})
	if err == nil || !strings.Contains(err.Error(), `listener "bad"`) {
		t.Fatalf("err = %v", err)
	}
	if got := m.Names(); len(got) != 1 || got[0] != "good" {
		t.Fatalf("names after failed update %v", got)
	}
}

func TestOriginalDstHandOff(t *testing.T) {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	orig := map[string]netip.AddrPort{} // client local addr -> injected original dst
	m := NewManager(Options{OriginalDst: func(c net.Conn) (netip.AddrPort, error) {
		mu.Lock()
		defer mu.Unlock()
		// The test registers the destination right after dialing.
		for {
			if od, ok := orig[c.RemoteAddr().String()]; ok {
				return od, nil
			}
			cond.Wait()
		}
	}})
	defer m.Close(context.Background())
	virtual := compile(t, &listenerv3.Listener{Name: "virtualOutbound", Address: sockAddr("127.0.0.1", 0),
		UseOriginalDst: wrapperspb.Bool(true), FilterChains: []*listenerv3.FilterChain{fc("passthrough", nil)}}, fakeDeps{})
	unbound := func(name, ip string, port uint32, tag string) *Config {
		return compile(t, &listenerv3.Listener{Name: name, Address: sockAddr(ip, port), BindToPort: wrapperspb.Bool(false),
			FilterChains: []*listenerv3.FilterChain{fc(tag, nil)}}, fakeDeps{})
	}
	od, _ := anypb.New(&origdstv3.OriginalDst{})
	inbound := compile(t, &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("127.0.0.1", 0),
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: od}}},
		FilterChains:    []*listenerv3.FilterChain{fc("inbound9080", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080)}), fc("inbound-other", nil)}}, fakeDeps{})
	cfgs := []*Config{virtual, inbound, unbound("0.0.0.0_9080", "0.0.0.0", 9080, "wild9080"), unbound("10.0.0.5_9080", "10.0.0.5", 9080, "exact")}
	if err := m.Update(cfgs); err != nil {
		t.Fatal(err)
	}
	out, _ := m.Addr("virtualOutbound")
	in, _ := m.Addr("virtualInbound")
	for _, tc := range []struct {
		via       net.Addr
		dst, want string
	}{
		{out, "10.0.0.5:9080", "exact listener=10.0.0.5_9080"},
		{out, "10.0.0.6:9080", "wild9080 listener=0.0.0.0_9080"},
		{out, "10.0.0.6:7777", "passthrough listener=virtualOutbound"},
		// The original_dst listener filter restores the destination for
		// chain matching but does not hand off.
		{in, "10.0.0.6:9080", "inbound9080 listener=virtualInbound"},
		{in, "10.0.0.6:8080", "inbound-other listener=virtualInbound"},
	} {
		d := net.Dialer{}
		c, err := d.Dial("tcp", tc.via.String())
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		orig[c.LocalAddr().String()] = netip.MustParseAddrPort(tc.dst)
		cond.Broadcast()
		mu.Unlock()
		got := readLine(t, c)
		c.Close()
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("dst %s: got %q, want %q", tc.dst, got, tc.want)
		}
	}
}

func TestTLSTermination(t *testing.T) {
	certPEM, keyPEM, pool := selfSigned(t, "reviews.default.svc")
	deps := fakeDeps{secrets: map[string]*tlsv3.Secret{"default": {Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}}}
	l := &listenerv3.Listener{Name: "gw", Address: sockAddr("127.0.0.1", 0), ListenerFilters: inspectors(true, false),
		ListenerFiltersTimeout: durationpb.New(time.Second),
		FilterChains: []*listenerv3.FilterChain{
			withTLS(fc("terminated", &listenerv3.FilterChainMatch{ServerNames: []string{"reviews.default.svc"}}), "default"),
			fc("passthrough", &listenerv3.FilterChainMatch{TransportProtocol: "tls"}),
			fc("plain", &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}),
		}}
	m := NewManager(Options{})
	defer m.Close(context.Background())
	if err := m.Update([]*Config{compile(t, l, deps)}); err != nil {
		t.Fatal(err)
	}
	addr, _ := m.Addr("gw")
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{ServerName: "reviews.default.svc", RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, c); got != fmt.Sprintf("terminated listener=gw sni=reviews.default.svc proto=%d tls=true", downstream.HTTP2) {
		t.Fatalf("got %q", got)
	}
	c.Close()
	raw, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	io.WriteString(raw, "hello")
	if got := readLine(t, raw); !strings.HasPrefix(got, "plain ") {
		t.Fatalf("got %q", got)
	}
	pt, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	// Send only a ClientHello: a handshake running on pt itself would race
	// readLine for the echo line and swallow it.
	if _, err := pt.Write(clientHello(t, "db.example.com", "h2")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, pt); !strings.HasPrefix(got, fmt.Sprintf("passthrough listener=gw sni=db.example.com proto=%d", downstream.TLS)) {
		t.Fatalf("got %q", got)
	}
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: got %q, %v", msg, buf, err)
	}
}

func freePort(t *testing.T) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

func selfSigned(t *testing.T, dns string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dns}, DNSNames: []string{dns},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

func TestPortMap(t *testing.T) {
	target := freePort(t)
	m := NewManager(Options{PortMap: map[uint16]uint16{8080: uint16(target)}})
	defer m.Close(context.Background())
	cfg := compile(t, &listenerv3.Listener{Name: "0.0.0.0_8080", Address: sockAddr("127.0.0.1", 8080), FilterChains: []*listenerv3.FilterChain{fc("gw", nil)}}, fakeDeps{})
	if err := m.Update([]*Config{cfg}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", target))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readLine(t, c); !strings.HasPrefix(got, "gw listener=0.0.0.0_8080") {
		t.Fatalf("got %q", got)
	}
}
