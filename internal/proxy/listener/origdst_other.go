//go:build !linux

package listener

import (
	"errors"
	"net"
	"net/netip"
)

// OriginalDst is only available on Linux (iptables REDIRECT).
func OriginalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST is only supported on linux")
}
