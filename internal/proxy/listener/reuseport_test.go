//go:build linux

package listener

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// What SO_REUSEPORT buys and costs at a proxy restart (docs/proxy-http.md):
// the successor binds the port while its predecessor still drains on it
// (a plain socket gets EADDRINUSE, so connections are refused from the
// old process's exit until the new one binds); when the predecessor
// closes its socket, connections the kernel had queued on it and not yet
// accepted are reset (Linux does not move them without the
// net.ipv4.tcp_migrate_req sysctl). The test measures both under a
// connection flood.
func TestReusePortHandOver(t *testing.T) {
	serve := func(ln net.Listener, name string, served *atomic.Int64) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Add(1)
			c.Write([]byte(name + "\n"))
			c.Close()
		}
	}
	old, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := old.Addr().String()
	var oldServed, newServed atomic.Int64
	go serve(old, "old", &oldServed)

	if plain, err := net.Listen("tcp", addr); err == nil {
		plain.Close()
		t.Fatal("a plain socket bound a port in use: the test proves nothing")
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("plain bind: %v", err)
	}

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
				c.Close()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	succ, err := Listen(addr) // the restarted proxy, while the old one drains
	if err != nil {
		t.Fatalf("the successor could not bind beside its predecessor: %v", err)
	}
	defer succ.Close()
	go serve(succ, "new", &newServed)
	time.Sleep(300 * time.Millisecond)
	old.Close() // the predecessor's drain ends
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("hand-over under a connection flood: %d connections answered (old %d, new %d), %d failed when the old socket closed",
		ok.Load(), oldServed.Load(), newServed.Load(), failed.Load())
	if oldServed.Load() == 0 || newServed.Load() == 0 {
		t.Fatalf("both sockets should have taken connections: old %d, new %d", oldServed.Load(), newServed.Load())
	}
}
