package park

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller is one epoll instance. Sockets are armed one-shot and level
// triggered: a socket readable when parked wakes at once, and each
// parking yields at most one event.
type poller struct {
	epfd int
	ev   unix.EpollEvent // arm's (under the Waiter's lock)
	// Netpoller mode: the epoll fd, non-blocking, is itself in Go's
	// netpoller (an epoll fd is readable while it has events), so the
	// waiting goroutine parks like any reader and holds no thread.
	f  *os.File
	rc syscall.RawConn
	// Blocking mode: the goroutine sits in epoll_wait on its own thread;
	// efd wakes it for Close.
	blocking bool
	efd      int
}

const wakeSlot = -1 // the eventfd's slot in blocking mode

func (p *poller) open(blocking bool) error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("park: epoll_create1: %w", err)
	}
	p.epfd, p.blocking = epfd, blocking
	if blocking {
		p.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err == nil {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
			err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p.efd, &ev)
		}
		if err != nil {
			unix.Close(epfd)
			return fmt.Errorf("park: eventfd: %w", err)
		}
		return nil
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return fmt.Errorf("park: %w", err)
	}
	p.f = os.NewFile(uintptr(epfd), "park-epoll")
	if p.rc, err = p.f.SyscallConn(); err != nil {
		p.f.Close()
		return fmt.Errorf("park: %w", err)
	}
	return nil
}

// arm adds fd (or re-arms it when it was added before) for one event.
func (p *poller) arm(fd int, slot int32, gen uint32, added bool) error {
	p.ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: slot, Pad: int32(gen)}
	ev := &p.ev
	op := unix.EPOLL_CTL_ADD
	if added {
		op = unix.EPOLL_CTL_MOD
	}
	err := unix.EpollCtl(p.epfd, op, fd, ev)
	switch {
	case err == unix.ENOENT && added:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, ev)
	case err == unix.EEXIST && !added:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, ev)
	}
	if err != nil {
		return fmt.Errorf("park: epoll_ctl: %w", err)
	}
	return nil
}

// run reports events to w until the poller closes.
func (p *poller) run(w *Waiter) {
	raw := make([]unix.EpollEvent, 128)
	evs := make([]event, 0, len(raw))
	var n int
	var werr error
	poll := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), raw, 0)
		return n > 0 || (werr != nil && werr != unix.EINTR)
	}
	for {
		if p.blocking {
			n, werr = unix.EpollWait(p.epfd, raw, -1)
		} else {
			err := p.rc.Read(poll)
			if err != nil {
				return // closed
			}
		}
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			return // the epoll fd is gone
		}
		evs = evs[:0]
		for _, e := range raw[:n] {
			if e.Fd == wakeSlot { // Close
				unix.Close(p.efd)
				unix.Close(p.epfd)
				return
			}
			evs = append(evs, event{slot: e.Fd, gen: uint32(e.Pad)})
		}
		w.ready(evs)
	}
}

func (p *poller) close() error {
	if p.blocking {
		var one = [8]byte{1}
		_, err := unix.Write(p.efd, one[:]) // run closes the fds
		return err
	}
	return p.f.Close()
}
