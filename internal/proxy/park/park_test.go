//go:build linux

package park

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Loopback block of the idle helper's tests.
const testIP = "127.0.67.1"

type chWaker chan Reason

func (c chWaker) Wake(r Reason) {
	select {
	case c <- r:
	default:
		panic("woken twice")
	}
}

func newChWaker() chWaker { return make(chWaker, 1) }

// pair returns the server and client ends of a loopback TCP connection.
func pair(t testing.TB) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", testIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); client.Close() })
	return s.(*net.TCPConn), client
}

func rawOf(t testing.TB, c *net.TCPConn) syscall.RawConn {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func waiters(t *testing.T) map[string]*Waiter {
	out := map[string]*Waiter{}
	for name, blocking := range map[string]bool{"netpoller": false, "blocking": true} {
		w, err := newWaiter(blocking)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		out[name] = w
	}
	return out
}

func wantWake(t *testing.T, wk chWaker, want Reason) {
	t.Helper()
	select {
	case r := <-wk:
		if r != want {
			t.Fatalf("woke %v, want %v", r, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not woken (want %v)", want)
	}
}

func wantNoWake(t *testing.T, wk chWaker, d time.Duration) {
	t.Helper()
	select {
	case r := <-wk:
		t.Fatalf("woke %v too early", r)
	case <-time.After(d):
	}
}

func TestWake(t *testing.T) {
	for name, w := range waiters(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("ready", func(t *testing.T) {
				s, c := pair(t)
				var sp Spot
				wk := newChWaker()
				if err := w.Park(&sp, rawOf(t, s), time.Time{}, wk); err != nil {
					t.Fatal(err)
				}
				wantNoWake(t, wk, 50*time.Millisecond)
				c.Write([]byte("x"))
				wantWake(t, wk, Ready)
				// The byte is still there for the woken reader.
				b := make([]byte, 1)
				s.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := s.Read(b); n != 1 || b[0] != 'x' {
					t.Fatalf("read %d %v", n, err)
				}
			})
			t.Run("readable when parked", func(t *testing.T) {
				s, c := pair(t)
				c.Write([]byte("x"))
				waitReadable(t, s)
				var sp Spot
				wk := newChWaker()
				if err := w.Park(&sp, rawOf(t, s), time.Time{}, wk); err != nil {
					t.Fatal(err)
				}
				wantWake(t, wk, Ready)
			})
			t.Run("hang-up", func(t *testing.T) {
				s, c := pair(t)
				var sp Spot
				wk := newChWaker()
				if err := w.Park(&sp, rawOf(t, s), time.Time{}, wk); err != nil {
					t.Fatal(err)
				}
				c.Close()
				wantWake(t, wk, Ready)
			})
			t.Run("reset", func(t *testing.T) {
				s, c := pair(t)
				var sp Spot
				wk := newChWaker()
				if err := w.Park(&sp, rawOf(t, s), time.Time{}, wk); err != nil {
					t.Fatal(err)
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				wantWake(t, wk, Ready)
			})
			t.Run("deadline", func(t *testing.T) {
				s, _ := pair(t)
				var sp Spot
				wk := newChWaker()
				began := time.Now()
				if err := w.Park(&sp, rawOf(t, s), began.Add(150*time.Millisecond), wk); err != nil {
					t.Fatal(err)
				}
				wantWake(t, wk, Expired)
				if d := time.Since(began); d < 150*time.Millisecond {
					t.Fatalf("expired after %v", d)
				}
				if w.Unpark(&sp) {
					t.Fatal("unparked after it woke")
				}
			})
			t.Run("unpark", func(t *testing.T) {
				s, c := pair(t)
				var sp Spot
				wk := newChWaker()
				if err := w.Park(&sp, rawOf(t, s), time.Now().Add(time.Hour), wk); err != nil {
					t.Fatal(err)
				}
				s.Close()
				if !w.Unpark(&sp) {
					t.Fatal("not parked")
				}
				wantWake(t, wk, Canceled)
				if w.Unpark(&sp) {
					t.Fatal("unparked twice")
				}
				c.Write([]byte("x")) // no second wake
				wantNoWake(t, wk, 50*time.Millisecond)
			})
			t.Run("again", func(t *testing.T) {
				// A connection parks after every request: re-arming the
				// registration it keeps between parkings.
				s, c := pair(t)
				var sp Spot
				b := make([]byte, 1)
				for i := 0; i < 20; i++ {
					wk := newChWaker()
					if err := w.Park(&sp, rawOf(t, s), time.Time{}, wk); err != nil {
						t.Fatal(err)
					}
					if i%3 == 2 {
						w.Unpark(&sp)
						wantWake(t, wk, Canceled)
						continue
					}
					c.Write([]byte{byte(i)})
					wantWake(t, wk, Ready)
					if n, _ := s.Read(b); n != 1 || b[0] != byte(i) {
						t.Fatalf("round %d: read %d %v", i, n, b)
					}
				}
				if n := w.Len(); n != 0 {
					t.Fatalf("%d still parked", n)
				}
			})
			t.Run("closed socket", func(t *testing.T) {
				s, _ := pair(t)
				rc := rawOf(t, s)
				s.Close()
				var sp Spot
				if err := w.Park(&sp, rc, time.Time{}, newChWaker()); err == nil {
					t.Fatal("parked a closed socket")
				}
				if n := w.Len(); n != 0 {
					t.Fatalf("%d parked", n)
				}
			})
		})
	}
}

func waitReadable(t *testing.T, s *net.TCPConn) {
	rc := rawOf(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ready := false
		rc.Control(func(fd uintptr) {
			b := make([]byte, 1)
			n, _, _ := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			ready = n > 0
		})
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("never readable")
		}
		time.Sleep(time.Millisecond)
	}
}

// Many connections parked at once, woken by data, hang-ups, deadlines
// and Unpark in any order: each wakes exactly once, for its own reason.
func TestMany(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const n = 300
	type one struct {
		s  *net.TCPConn
		c  net.Conn
		sp Spot
		wk chWaker
	}
	conns := make([]*one, n)
	for i := range conns {
		s, c := pair(t)
		o := &one{s: s, c: c, wk: newChWaker()}
		var dl time.Time
		if i%4 == 2 {
			dl = time.Now().Add(time.Duration(i%50) * time.Millisecond)
		}
		if err := w.Park(&o.sp, rawOf(t, s), dl, o.wk); err != nil {
			t.Fatal(err)
		}
		conns[i] = o
	}
	var wg sync.WaitGroup
	for i, o := range conns {
		switch i % 4 {
		case 0:
			o.c.Write([]byte("x"))
		case 1:
			o.c.Close()
		case 3:
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !w.Unpark(&o.sp) {
					t.Error("not parked")
				}
			}()
		}
	}
	wg.Wait()
	for i, o := range conns {
		want := []Reason{Ready, Ready, Expired, Canceled}[i%4]
		wantWake(t, o.wk, want)
	}
	if l := w.Len(); l != 0 {
		t.Fatalf("%d still parked", l)
	}
}

func TestCloseWakesAll(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var wks []chWaker
	for i := 0; i < 5; i++ {
		s, _ := pair(t)
		wk := newChWaker()
		if err := w.Park(new(Spot), rawOf(t, s), time.Time{}, wk); err != nil {
			t.Fatal(err)
		}
		wks = append(wks, wk)
	}
	w.Close()
	for _, wk := range wks {
		wantWake(t, wk, Canceled)
	}
	s, _ := pair(t)
	if err := w.Park(new(Spot), rawOf(t, s), time.Time{}, newChWaker()); err != ErrClosed {
		t.Fatalf("park after close: %v", err)
	}
}

// BenchmarkParkWake: one idle connection parked, a byte from the peer,
// the wake and the read, in each mode of waiting.
func BenchmarkParkWake(b *testing.B) {
	for _, mode := range []struct {
		name     string
		blocking bool
	}{{"netpoller", false}, {"blocking", true}} {
		b.Run(mode.name, func(b *testing.B) {
			w, err := newWaiter(mode.blocking)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			s, c := pair(b)
			rc := rawOf(b, s)
			var sp Spot
			wk := newChWaker()
			one, buf := []byte("x"), make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := w.Park(&sp, rc, time.Time{}, wk); err != nil {
					b.Fatal(err)
				}
				c.Write(one)
				<-wk
				s.Read(buf)
			}
		})
	}
}

// A socket closed by someone else while parked (a listener closing what
// is left after its drain timeout) leaves the epoll set without an event;
// its owner is still woken to clean up.
func TestClosedWhileParked(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, _ := pair(t)
	wk := newChWaker()
	if err := w.Park(new(Spot), rawOf(t, s), time.Time{}, wk); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	s.Close()
	wantWake(t, wk, Canceled)
	t.Logf("woken %v after the close", time.Since(began))
	if n := w.Len(); n != 0 {
		t.Fatalf("%d parked", n)
	}
}
