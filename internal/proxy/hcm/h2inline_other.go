//go:build !linux

package hcm

import (
	"io"
	"syscall"
)

// Only Linux serves HTTP/2 streams inline (its reads are batched).
func (sc *h2sConn) initInline() {}

func (sc *h2sConn) rdDrained() bool { return false }

func rawWriteFD(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }

func isEAGAIN(e syscall.Errno) bool { return e == syscall.EAGAIN }

func batched(io.Reader) bool { return false }
