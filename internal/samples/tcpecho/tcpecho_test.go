package tcpecho

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/samples"
)

func start(t *testing.T, prefix string, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = "127.0.0.1:0"
	}
	lns, err := samples.Listen(addrs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := &Server{Prefix: prefix}
	go func() { done <- s.Serve(ctx, lns) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

func TestEcho(t *testing.T) {
	addrs := start(t, "one", 2)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"one line", "hello\n", "one hello\n"},
		{"two lines", "a\nb\n", "one a\none b\n"},
		{"date line", "Mon Nov 12 23:24:57 UTC 2022\n", "one Mon Nov 12 23:24:57 UTC 2022\n"},
		{"partial at EOF", "no newline", "one no newline"},
		{"empty", "", ""},
	}
	for _, addr := range addrs {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, tc.in)
				c.(*net.TCPConn).CloseWrite()
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Errorf("got %q want %q", got, tc.want)
				}
			})
		}
	}
}

// TestInteractive checks the connection stays open between lines, as nc
// sessions in the tasks expect.
func TestInteractive(t *testing.T) {
	addr := start(t, "two", 1)[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, line := range []string{"x", "y"} {
		io.WriteString(c, line+"\n")
		got, err := r.ReadString('\n')
		if err != nil || got != "two "+line+"\n" {
			t.Fatalf("got %q, %v", got, err)
		}
	}
}

func TestLongLineRejected(t *testing.T) {
	addr := start(t, "p", 1)[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, strings.Repeat("x", maxLine+5000))
	got, _ := io.ReadAll(c)
	if len(got) != 0 {
		t.Fatalf("echoed %d bytes of an over-long line", len(got))
	}
}
