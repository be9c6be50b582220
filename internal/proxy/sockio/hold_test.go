package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A held write leaves inside the next Read, and that Read sees the answer
// even when the peer answers at once (the answer may arrive before the
// Read's write returns): a lost readiness would hang here until the
// deadline.
func TestHeldWriteThenRead(t *testing.T) {
	c, peer := pair(t)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			if _, err := peer.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64)
	for i := 0; i < 2000; i++ {
		msg := []byte{'q', byte(i), byte(i >> 8)}
		c.Hold()
		if n, err := c.Write(msg); n != len(msg) || err != nil {
			t.Fatalf("held write: %d, %v", n, err)
		}
		if c.Held() != len(msg) {
			t.Fatalf("Held %d before the read, want %d", c.Held(), len(msg))
		}
		got := 0
		for got < len(msg) {
			n, err := c.Read(buf[got:])
			if err != nil {
				t.Fatalf("round %d: read: %v", i, err)
			}
			got += n
		}
		if !bytes.Equal(buf[:got], msg) || c.Held() != 0 {
			t.Fatalf("round %d: got %q (held %d), want %q", i, buf[:got], c.Held(), msg)
		}
	}
}

// A held write larger than the socket buffers is finished by the Read
// (waiting for space) before it reads the answer.
func TestHeldWriteLargerThanBuffers(t *testing.T) {
	c, peer := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	go func() {
		time.Sleep(20 * time.Millisecond)
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(data))))
		if bytes.Equal(b, data) {
			peer.Write([]byte("ok"))
		} else {
			peer.Write([]byte("no"))
		}
	}()
	c.Hold()
	c.Write(data)
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("answer %q, %v", buf, err)
	}
}

// A Read that cannot start (its deadline passed) writes nothing, and
// Held says so; the next Write does not send the dropped bytes.
func TestHeldWriteDroppedByFailedRead(t *testing.T) {
	c, peer := pair(t)
	c.Hold()
	c.Write([]byte("never"))
	c.nc.SetReadDeadline(time.Unix(1, 0))
	var ne net.Error
	if _, err := c.Read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if c.Held() != 5 {
		t.Fatalf("Held %d, want 5", c.Held())
	}
	c.nc.SetReadDeadline(time.Time{})
	c.Write([]byte("next"))
	buf := make([]byte, 16)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := peer.Read(buf)
	if err != nil || string(buf[:n]) != "next" {
		t.Fatalf("peer read %q, %v; want only \"next\"", buf[:n], err)
	}
}

// A held write to a connection the peer reset fails the Read as a write.
func TestHeldWriteToResetPeer(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // RST
	time.Sleep(10 * time.Millisecond)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Hold()
	c.Write([]byte("late"))
	_, err := c.Read(make([]byte, 8))
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("read after reset: %v, want a *net.OpError", err)
	}
	if oe.Op != "write" && oe.Op != "read" {
		t.Fatalf("op %q", oe.Op)
	}
}

// Flush writes a held write without a Read.
func TestHeldWriteFlush(t *testing.T) {
	c, peer := pair(t)
	c.Hold()
	c.Write([]byte("now"))
	if err := c.Flush(); err != nil || c.Held() != 0 {
		t.Fatalf("flush: %v, held %d", err, c.Held())
	}
	buf := make([]byte, 8)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := peer.Read(buf)
	if err != nil || string(buf[:n]) != "now" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
}
