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
