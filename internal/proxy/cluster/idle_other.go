//go:build !unix

package cluster

import "net"

type peeker struct{}

const (
	peekIdle int8 = iota
	peekData
	peekClosed
)

func newPeeker(net.Conn) *peeker { return nil }

func (*peeker) peek() int8 { return peekIdle }
