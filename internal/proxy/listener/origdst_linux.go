//go:build linux

package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h); both are 80.
const soOriginalDst = 80

// OriginalDst reads the pre-REDIRECT destination of a TCP connection that
// iptables (or ip6tables) redirected. A connection that was not redirected
// reports its own local address or an error.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("original destination: not a TCP connection")
	}
	local := addrPort(tc.LocalAddr())
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var out netip.AddrPort
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if local.Addr().Is4() {
			// The kernel writes a sockaddr_in; IPv6Mreq is a 20-byte buffer that holds it.
			var m *unix.IPv6Mreq
			m, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, soOriginalDst)
			if serr == nil {
				b := m.Multiaddr
				out = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), uint16(b[2])<<8|uint16(b[3]))
			}
			return
		}
		// sockaddr_in6 (28 bytes) fits IPv6MTUInfo's leading RawSockaddrInet6.
		var m *unix.IPv6MTUInfo
		m, serr = unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, soOriginalDst)
		if serr == nil {
			// sin6_port is in network byte order in memory.
			var p [2]byte
			binary.NativeEndian.PutUint16(p[:], m.Addr.Port)
			out = netip.AddrPortFrom(netip.AddrFrom16(m.Addr.Addr), binary.BigEndian.Uint16(p[:]))
		}
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", serr)
	}
	return out, nil
}
