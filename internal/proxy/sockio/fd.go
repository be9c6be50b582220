package sockio

import "syscall"

// ReadFD reads from the non-blocking socket fd with a raw system call
// (see the package doc), for callers that wait in the poller themselves
// (inside syscall.RawConn's Read callback). EAGAIN: nothing there yet.
func ReadFD(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, e := rawRead(fd, p)
		if e != syscall.EINTR {
			if e != 0 {
				n = 0
			}
			return n, e
		}
	}
}

// WriteFD writes p to the non-blocking socket fd with raw system calls
// until it is written or the socket buffer is full (EAGAIN, with the
// count written), for use inside syscall.RawConn's callbacks.
func WriteFD(fd uintptr, p []byte) (int, syscall.Errno) {
	n := 0
	for n < len(p) {
		m, e := rawWrite(fd, p[n:])
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return n, e
		}
		n += m
	}
	return n, 0
}
