//go:build !linux

package hcm

import "net"

// h2Conn: only Linux batches HTTP/2 frame reads (see h2read_linux.go).
func h2Conn(cc *conn) net.Conn { return cc }

// h2conn batches nothing here.
type h2conn struct{}

func (*h2conn) expectData() {}

const h2HandlerBuf = 4 << 10
