package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns a Conn over the accepted side of a loopback connection and
// the dialing side.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := New(nc)
	if c == nil {
		t.Skip("raw socket I/O not supported here")
	}
	return c, peer
}

func TestReadWrite(t *testing.T) {
	c, peer := pair(t)
	// Read waits in the poller until the peer writes.
	go func() {
		time.Sleep(10 * time.Millisecond)
		peer.Write([]byte("ping"))
	}()
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if n, err := c.Write([]byte("pong")); n != 4 || err != nil {
		t.Fatalf("write %d, %v", n, err)
	}
	if _, err := io.ReadFull(peer, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("peer read %q, %v", buf[:4], err)
	}
	peer.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer's close: %d, %v; want io.EOF", n, err)
	}
}

// A write larger than the socket buffers waits for the reader and sends
// every byte in order.
func TestWriteWaitsForBufferSpace(t *testing.T) {
	c, peer := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte)
	go func() {
		time.Sleep(20 * time.Millisecond) // let the buffers fill first
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(data))))
		got <- b
	}()
	n, err := c.Write(data)
	if n != len(data) || err != nil {
		t.Fatalf("write %d of %d, %v", n, len(data), err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("peer got %d bytes, not what was written", len(b))
	}
}

func TestDeadlines(t *testing.T) {
	c, _ := pair(t)
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v; want a timeout", err)
	}
	// The peer reads nothing: a write fills the buffers, then times out.
	c.nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.As(err, &ne) || !ne.Timeout() || n == 0 || n == 64<<20 {
		t.Fatalf("write past the deadline: %d bytes, %v; want part and a timeout", n, err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error)
	go func() {
		_, err := c.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.nc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v; want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read still blocked after close")
	}
}

func TestResetIsAnError(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0) // close sends RST
	peer.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Read(make([]byte, 8))
		if err != nil && err != io.EOF {
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "read" {
				t.Fatalf("reset: %v; want a *net.OpError for read", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reset error: %v", err)
		}
	}
}

func TestNewNeedsTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if New(a) != nil {
		t.Fatal("New on a pipe: want nil")
	}
}

// BenchmarkWrite is a 1 KiB write and read back over loopback, raw and
// through the net.Conn.
func BenchmarkWrite(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "netconn"
		if raw {
			name = "sockio"
		}
		b.Run(name, func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			peer, _ := net.Dial("tcp", ln.Addr().String())
			defer peer.Close()
			nc, _ := ln.Accept()
			defer nc.Close()
			var w io.Writer = nc
			if raw {
				w = New(nc)
			}
			p, q := make([]byte, 1024), make([]byte, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.Write(p)
				io.ReadFull(peer, q)
			}
		})
	}
}

func TestPeek(t *testing.T) {
	c, peer := pair(t)
	peek := func() (n int, e syscall.Errno) {
		buf := make([]byte, 4)
		if err := c.rc.Control(func(fd uintptr) { n, e = Peek(fd, buf) }); err != nil {
			t.Fatal(err)
		}
		return n, e
	}
	if n, e := peek(); n != 0 || e != syscall.EAGAIN {
		t.Fatalf("nothing sent: %d, %v; want EAGAIN", n, e)
	}
	peer.Write([]byte("x"))
	waitFor(t, func() bool { n, _ := peek(); return n == 1 })
	// Peeking consumed nothing.
	if b := make([]byte, 4); func() int { n, _ := c.Read(b); return n }() != 1 || b[0] != 'x' {
		t.Fatal("the peeked byte was not read afterwards")
	}
	peer.Close()
	waitFor(t, func() bool { n, e := peek(); return n == 0 && e == 0 })
}

func TestPeekReset(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	waitFor(t, func() bool {
		var n int
		var e syscall.Errno
		c.rc.Control(func(fd uintptr) { n, e = Peek(fd, make([]byte, 1)) })
		return n == 0 && e != 0 && e != syscall.EAGAIN
	})
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
	}
}
