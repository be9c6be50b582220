//go:build !linux

package hcm

import (
	"net"
	"syscall"
)

// rawConnOf: only Linux waits on the socket without a buffer; elsewhere
// the lean path reads one byte without a buffer instead.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func tcpOf(net.Conn) *net.TCPConn { return nil }

func socketReadable(uintptr, []byte) bool { return true }
