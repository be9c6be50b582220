package listener

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

type chain struct {
	name    string
	match   *chainMatch // nil: matches everything
	tls     *tls.Config // non-nil: terminate TLS
	handler Handler
	// terminal is the last filter (hcm, tcp_proxy): the one that holds the
	// connections, so draining and retiring talk to it past any RBAC
	// filters wrapped around it.
	terminal Handler
	source   *listenerv3.FilterChain
}

// chainMatch is a compiled FilterChainMatch. Empty criteria match all.
type chainMatch struct {
	port        uint32
	dstPrefixes []netip.Prefix
	serverNames []string
	transport   string
	alpn        []string
	directSrc   []netip.Prefix
	sourceType  listenerv3.FilterChainMatch_ConnectionSourceType
	srcPrefixes []netip.Prefix
	srcPorts    []uint32
}

func compileChain(fc *listenerv3.FilterChain, path, listenerName string, deps Deps) (*chain, error) {
	if fc.GetName() != "" {
		path += " (" + fc.GetName() + ")"
	}
	if err := xdsfield.Check(fc, path, "filter_chain_match", "filters", "transport_socket", "name", "metadata"); err != nil {
		return nil, err
	}
	ch := &chain{name: fc.GetName(), source: fc}
	if m := fc.GetFilterChainMatch(); m != nil && !proto.Equal(m, &listenerv3.FilterChainMatch{}) {
		cm, err := compileMatch(m, path+": filter_chain_match")
		if err != nil {
			return nil, err
		}
		ch.match = cm
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		if err := xdsfield.Check(ts, path+": transport_socket", "name", "typed_config"); err != nil {
			return nil, err
		}
		tc := ts.GetTypedConfig()
		d := &tlsv3.DownstreamTlsContext{}
		if tc == nil || !tc.MessageIs(d) {
			return nil, fmt.Errorf("%s: transport_socket: unsupported type %s (want DownstreamTlsContext)", path, tc.GetTypeUrl())
		}
		if err := tc.UnmarshalTo(d); err != nil {
			return nil, fmt.Errorf("%s: transport_socket: %v", path, err)
		}
		cfg, err := ServerTLS(d, deps.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s: transport_socket: %w", path, err)
		}
		ch.tls = cfg
	}
	fs := fc.GetFilters()
	if len(fs) == 0 {
		return nil, fmt.Errorf("%s: filters: want a terminal network filter (http_connection_manager or tcp_proxy)", path)
	}
	// The last filter is terminal; the ones before it (RBAC) decide about
	// the connection and hand it on, so they are built back to front.
	var h Handler
	for i := len(fs) - 1; i >= 0; i-- {
		fh, err := deps.NetworkFilter(listenerName, fs[i])
		if err != nil {
			return nil, fmt.Errorf("%s: filters[%d] (%s): %w", path, i, fs[i].GetName(), err)
		}
		c, chainer := fh.(Chainer)
		switch {
		case i == len(fs)-1 && chainer:
			return nil, fmt.Errorf("%s: filters[%d] (%s): the last network filter must be terminal (http_connection_manager or tcp_proxy)", path, i, fs[i].GetName())
		case i < len(fs)-1 && !chainer:
			return nil, fmt.Errorf("%s: filters[%d] (%s): a terminal filter must be last", path, i, fs[i].GetName())
		case chainer:
			fh = c.Chain(h)
		default:
			ch.terminal = fh
		}
		h = fh
	}
	ch.handler = h
	return ch, nil
}

func compileMatch(m *listenerv3.FilterChainMatch, path string) (*chainMatch, error) {
	if err := xdsfield.Check(m, path, "destination_port", "prefix_ranges", "server_names", "transport_protocol",
		"application_protocols", "direct_source_prefix_ranges", "source_type", "source_prefix_ranges", "source_ports"); err != nil {
		return nil, err
	}
	cm := &chainMatch{
		port:        m.GetDestinationPort().GetValue(),
		transport:   m.GetTransportProtocol(),
		alpn:        m.GetApplicationProtocols(),
		sourceType:  m.GetSourceType(),
		srcPorts:    m.GetSourcePorts(),
		serverNames: make([]string, 0, len(m.GetServerNames())),
	}
	for _, s := range m.GetServerNames() {
		s = strings.ToLower(s)
		if strings.Contains(s, "*") && (!strings.HasPrefix(s, "*.") || strings.Count(s, "*") > 1) {
			return nil, fmt.Errorf("%s: server_names %q: only a leading *. wildcard is supported", path, s)
		}
		cm.serverNames = append(cm.serverNames, s)
	}
	var err error
	if cm.dstPrefixes, err = prefixes(m.GetPrefixRanges(), path+": prefix_ranges"); err != nil {
		return nil, err
	}
	if cm.directSrc, err = prefixes(m.GetDirectSourcePrefixRanges(), path+": direct_source_prefix_ranges"); err != nil {
		return nil, err
	}
	if cm.srcPrefixes, err = prefixes(m.GetSourcePrefixRanges(), path+": source_prefix_ranges"); err != nil {
		return nil, err
	}
	return cm, nil
}

func prefixes(rs []*corev3.CidrRange, path string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, r := range rs {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %v", path, r.GetAddressPrefix(), err)
		}
		a = a.Unmap()
		bits := a.BitLen()
		if r.GetPrefixLen() != nil {
			bits = int(r.GetPrefixLen().GetValue())
		}
		p, err := a.Prefix(bits)
		if err != nil {
			return nil, fmt.Errorf("%s: %s/%d: %v", path, a, bits, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// checkDuplicates rejects two chains with identical matches, as Envoy does
// ("multiple filter chains with the same matching rules").
func checkDuplicates(chains []*chain, path string) error {
	for i := range chains {
		for j := 0; j < i; j++ {
			a, b := chains[i].source.GetFilterChainMatch(), chains[j].source.GetFilterChainMatch()
			if a == nil {
				a = &listenerv3.FilterChainMatch{}
			}
			if b == nil {
				b = &listenerv3.FilterChainMatch{}
			}
			if proto.Equal(a, b) {
				return fmt.Errorf("%s: filter_chains[%d] and [%d] have the same filter_chain_match", path, j, i)
			}
		}
	}
	return nil
}

// connFacts is what the listener knows about a connection when matching.
type connFacts struct {
	dst        netip.AddrPort
	src        netip.AddrPort
	serverName string
	transport  string // "tls" or "raw_buffer"
	alpn       []string
}

// Match criteria in Envoy's order.
const (
	stepPort = iota
	stepDstPrefix
	stepServerName
	stepTransport
	stepALPN
	stepDirectSrc
	stepSourceType
	stepSrcPrefix
	stepSrcPort
	numSteps
)

// selectChain implements Envoy's filter chain match: the criteria are
// checked in a fixed order, and at each step the most specific chains that
// match win; chains that leave the criterion empty are the fallback for that
// step only (no backtracking). If nothing is left, the default chain (may be
// nil) serves.
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/listener/v3/listener_components.proto#config-listener-v3-filterchainmatch
func selectChain(chains []*chain, def *chain, f *connFacts) *chain {
	var buf [32]*chain
	cand := append(buf[:0], chains...)
	local := f.src.Addr().IsLoopback() || f.src.Addr() == f.dst.Addr()
	sni := f.serverName
	for i := 0; i < len(sni); i++ {
		if c := sni[i]; c >= 'A' && c <= 'Z' {
			sni = strings.ToLower(sni)
			break
		}
	}
	for step := 0; step < numSteps && len(cand) > 0; step++ {
		// Pass 1: the best score; pass 2: keep chains with it, or with
		// score 0 (criterion unset) when nothing scored above 0.
		best := 0
		for _, c := range cand {
			best = max(best, score(step, m(c), f, sni, local))
		}
		n := 0
		for _, c := range cand {
			if score(step, m(c), f, sni, local) == best {
				cand[n] = c
				n++
			}
		}
		cand = cand[:n]
	}
	if len(cand) == 0 {
		return def
	}
	return cand[0]
}

var emptyMatch = &chainMatch{}

func m(c *chain) *chainMatch {
	if c.match == nil {
		return emptyMatch
	}
	return c.match
}

// score rates one chain for one criterion: 0 when the chain leaves it
// unset, -1 when it does not match, higher for more specific matches.
func score(step int, cm *chainMatch, f *connFacts, sni string, local bool) int {
	switch step {
	case stepPort:
		if cm.port == 0 {
			return 0
		}
		if cm.port == uint32(f.dst.Port()) {
			return 1
		}
	case stepDstPrefix:
		return prefixScore(cm.dstPrefixes, f.dst.Addr())
	case stepServerName:
		// An exact name beats the longest wildcard suffix (*.b.example.com
		// beats *.example.com); wildcards match any depth.
		if len(cm.serverNames) == 0 {
			return 0
		}
		best := -1
		for _, n := range cm.serverNames {
			switch {
			case sni == "":
			case n == sni:
				best = max(best, 1<<16)
			case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(sni) > len(n)-1:
				best = max(best, len(n))
			}
		}
		return best
	case stepTransport:
		if cm.transport == "" {
			return 0
		}
		if cm.transport == f.transport {
			return 1
		}
	case stepALPN:
		// The connection's first protocol (in its order) that a chain lists
		// selects the chains listing it.
		if len(cm.alpn) == 0 {
			return 0
		}
		for i, p := range f.alpn {
			if slices.Contains(cm.alpn, p) {
				return len(f.alpn) - i
			}
		}
	case stepDirectSrc:
		return prefixScore(cm.directSrc, f.src.Addr())
	case stepSourceType:
		switch cm.sourceType {
		case listenerv3.FilterChainMatch_ANY:
			return 0
		case listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK:
			if local {
				return 1
			}
		case listenerv3.FilterChainMatch_EXTERNAL:
			if !local {
				return 1
			}
		}
	case stepSrcPrefix:
		return prefixScore(cm.srcPrefixes, f.src.Addr())
	case stepSrcPort:
		if len(cm.srcPorts) == 0 {
			return 0
		}
		if slices.Contains(cm.srcPorts, uint32(f.src.Port())) {
			return 1
		}
	}
	return -1
}

// prefixScore is 1+longest matching prefix length, 0 when no prefixes, -1
// when prefixes are listed and none contains ip.
func prefixScore(ps []netip.Prefix, ip netip.Addr) int {
	if len(ps) == 0 {
		return 0
	}
	ip = ip.Unmap()
	best := -1
	for _, p := range ps {
		if p.Contains(ip) && p.Bits()+1 > best {
			best = p.Bits() + 1
		}
	}
	return best
}
