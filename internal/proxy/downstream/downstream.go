// Package downstream describes an accepted downstream connection: what the
// listener layer learned about it (addresses, original destination, TLS,
// SNI, ALPN, sniffed protocol) before handing it to a network filter (the
// HTTP connection manager or the TCP proxy). Produced once per connection by
// internal/proxy/listener; read-only afterwards.
package downstream

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"

	"github.com/weftmesh/weft/internal/meshtls"
)

// Protocol is what sniffing (or the filter chain match) decided.
type Protocol uint8

const (
	Unknown Protocol = iota
	RawTCP
	HTTP1
	HTTP2 // h2c prior knowledge, or h2 negotiated with ALPN
	TLS   // TLS not terminated here (passthrough)
)

// Info is per-connection metadata.
type Info struct {
	Listener    string         // listener name, e.g. virtualInbound, 0.0.0.0_8080
	FilterChain string         // matched filter chain name
	Local       netip.AddrPort // address the connection arrived on
	Remote      netip.AddrPort // peer address
	// OriginalDst is the pre-redirect destination (SO_ORIGINAL_DST) for
	// captured traffic, else equal to Local.
	OriginalDst netip.AddrPort
	ServerName  string   // SNI from the ClientHello, if any
	ALPN        []string // client-offered ALPN (passthrough) or negotiated (terminated)
	Protocol    Protocol
	// TLS is set when this proxy terminated TLS on the connection.
	TLS *tls.ConnectionState
	// LocalCert is the certificate this proxy presented when it terminated
	// TLS (XFCC's By= and destination_principal name it).
	LocalCert *x509.Certificate
	// Detach, when the listener sets it, lets the server of the connection
	// go on serving it in another goroutine: after Detach, ServeConn's
	// caller returns without closing or forgetting the connection, and the
	// server calls done exactly once when it has closed it. An idle
	// keep-alive connection then waits on a fresh goroutine with a minimal
	// stack instead of the one grown while serving (issue 18).
	Detach func() (done func())
}

// LocalIdentity is the SPIFFE identity of the certificate this proxy
// presented on the connection; ok is false without one.
func (i *Info) LocalIdentity() (id meshtls.Identity, ok bool) {
	if i == nil || i.LocalCert == nil {
		return meshtls.Identity{}, false
	}
	id, err := meshtls.CertIdentity(i.LocalCert)
	return id, err == nil
}

// PeerIdentity is the SPIFFE identity of a downstream that presented a
// certificate this proxy verified (mutual TLS terminated here); ok is false
// for plaintext, passthrough and unverified peers. Telemetry
// (source_principal), XFCC and RBAC read the peer's identity from here.
func (i *Info) PeerIdentity() (id meshtls.Identity, ok bool) {
	if i == nil || i.TLS == nil || len(i.TLS.VerifiedChains) == 0 {
		return meshtls.Identity{}, false
	}
	id, err := meshtls.PeerIdentity(i.TLS)
	return id, err == nil
}
