//go:build !linux

package listener

import "net"

// Listen binds a TCP listening socket (SO_REUSEPORT on Linux only).
func Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
