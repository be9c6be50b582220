package samples

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// After the signal a server with a delay keeps answering (Connection:
// close), then refuses new connections while a request in flight
// finishes; Abort ends the delay early.
func TestShutdownDelayThenDrain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	release, started := make(chan struct{}), make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abort := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- ServeHTTPUntil(ctx, slog.New(slog.DiscardHandler), h, []net.Listener{ln}, Shutdown{Delay: time.Hour, Timeout: 30 * time.Second, Abort: abort})
	}()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	get := func(path string) (*http.Response, error) {
		resp, err := client.Get(addr + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get("/"); err != nil || resp.Close {
		t.Fatalf("before the signal: %v, close %v; want keep-alive", err, resp != nil && resp.Close)
	}
	slow := make(chan error, 1)
	go func() {
		resp, err := get("/slow")
		if err == nil && resp.StatusCode != 200 {
			err = errors.New(resp.Status)
		}
		slow <- err
	}()
	<-started
	cancel()
	meshtest.Eventually(t, "answers with Connection: close after the signal", 10*time.Second, func() error {
		resp, err := get("/")
		if err != nil {
			return err
		}
		if !resp.Close {
			return errors.New("still keep-alive")
		}
		return nil
	})
	// Still serving, each request on a new connection.
	for range 5 {
		if resp, err := get("/"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("during the delay: %v", err)
		}
	}
	close(abort)
	meshtest.Eventually(t, "new connections refused after the delay", 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			c.Close()
			return errors.New("still accepting")
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("the request in flight: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// Without a delay the server stops accepting at the signal.
func TestShutdownNoDelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeHTTP(ctx, slog.New(slog.DiscardHandler), http.NotFoundHandler(), []net.Listener{ln})
	}()
	// Serving (not only listening) before the signal.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after the signal")
	}
}
