package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// FuzzSniff feeds arbitrary first bytes to the inspectors: they must not
// panic, must not consume anything, and must agree with the input kind.
func FuzzSniff(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte{0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Add(clientHello(f, "a.example.com", "h2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), maxPeek)
		got := sniff(r, nopDeadlines{}, true, true, time.Second)
		rest := make([]byte, len(data))
		n, _ := r.Read(rest)
		for n < len(data) {
			m, err := r.Read(rest[n:])
			if err != nil {
				break
			}
			n += m
		}
		if !bytes.Equal(rest[:n], data) {
			t.Fatalf("sniffing consumed input")
		}
		if got.tls && (len(data) < 5 || data[0] != 0x16) {
			t.Fatalf("non-TLS input detected as TLS: %+v", got)
		}
		if !got.tls && len(got.alpn) > 0 && got.alpn[0] == "h2c" && !bytes.HasPrefix(data, h2Preface) {
			t.Fatalf("h2c without the preface")
		}
	})
}

// nopDeadlines satisfies the deadline calls sniff makes on the conn.
type nopDeadlines struct{ net.Conn }

func (nopDeadlines) SetReadDeadline(time.Time) error { return nil }

// clientHello records the first flight of a real TLS client.
func clientHello(tb testing.TB, sni, alpn string) []byte {
	tb.Helper()
	c1, c2 := net.Pipe()
	go func() {
		_ = tls.Client(c1, &tls.Config{ServerName: sni, NextProtos: []string{alpn}, InsecureSkipVerify: true}).Handshake()
	}()
	r := bufio.NewReaderSize(c2, maxPeek)
	hdr, err := r.Peek(5)
	if err != nil {
		tb.Fatal(err)
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	rec, err := r.Peek(5 + n)
	if err != nil {
		tb.Fatal(err)
	}
	out := append([]byte(nil), rec...)
	c1.Close()
	c2.Close()
	return out
}

func BenchmarkSelectChain(b *testing.B) {
	var chains []*chain
	for p := uint32(9000); p < 9100; p++ {
		chains = append(chains, &chain{name: "p", match: &chainMatch{port: p, transport: "raw_buffer"}})
		chains = append(chains, &chain{name: "t", match: &chainMatch{port: p, transport: "tls", alpn: []string{"istio"}}})
	}
	f := &connFacts{transport: "tls", alpn: []string{"istio", "h2"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f.dst = netipAddrPort(9050)
		if selectChain(chains, nil, f) == nil {
			b.Fatal("no chain")
		}
	}
}

func netipAddrPort(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port)
}

func BenchmarkSelectChainSmall(b *testing.B) {
	var chains []*chain
	for p := uint32(9000); p < 9005; p++ {
		chains = append(chains, &chain{name: "p", match: &chainMatch{port: p, transport: "raw_buffer"}})
		chains = append(chains, &chain{name: "t", match: &chainMatch{port: p, transport: "tls", alpn: []string{"istio"}}})
	}
	f := &connFacts{dst: netipAddrPort(9003), transport: "tls", alpn: []string{"istio", "h2"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if c := selectChain(chains, nil, f); c == nil || c.name != "t" {
			b.Fatal("wrong chain")
		}
	}
}

// FuzzCompile: any Listener the control plane could send compiles or
// fails with an error; it never panics.
func FuzzCompile(f *testing.F) {
	seeds := []*listenerv3.Listener{
		{Name: "l", Address: sockAddr("0.0.0.0", 15006), ListenerFilters: inspectors(true, true),
			FilterChains: []*listenerv3.FilterChain{
				fc("a", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), ServerNames: []string{"*.example.com"},
					PrefixRanges: []*corev3.CidrRange{cidr("10.0.0.0", 8)}, ApplicationProtocols: []string{"h2c"}}),
				withTLS(fc("b", &listenerv3.FilterChainMatch{TransportProtocol: "tls"}), "cert"),
			},
			DefaultFilterChain: &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "tag:d"}}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &listenerv3.Listener{}
		if proto.Unmarshal(data, l) != nil {
			return
		}
		cfg, err := Compile(l, fakeDeps{})
		if err != nil {
			return
		}
		// A compiled listener can match any connection without panicking.
		selectChain(cfg.chains, cfg.defaultChain, &connFacts{dst: netipAddrPort(9080), transport: "tls", serverName: "a.example.com", alpn: []string{"h2c"}})
	})
}
