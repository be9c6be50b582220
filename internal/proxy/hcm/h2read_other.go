//go:build !linux

package hcm

import "net"

// h2Conn: only Linux batches HTTP/2 frame reads (see h2read_linux.go).
func h2Conn(cc *conn) net.Conn { return cc }
