package cluster

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/internal/meshtest"
)

// getBody sends a GET through c and reads the response.
func getBody(t *testing.T, c *Cluster) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	resp, _, err := c.RoundTrip(req, nil)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// A bodiless request takes a connection used within recentUse without the
// idle check (recentUse); when the server closed that connection anyway,
// the request is resent on a fresh one, and a request with a body is still
// checked first. The clock stands still, so every pooled connection counts
// as recently used.
func TestRecentConnSkipsIdleCheck(t *testing.T) {
	var closed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			w.Write(b) // post's echo
			return
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Start()
	defer srv.Close()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", srv.Listener.Addr().String())}, nil,
		Options{Clock: newFakeClock()})
	defer s.Close()
	c := s.Get("c")
	st := c.Stats()

	if got := getBody(t, c); got != "ok" {
		t.Fatalf("first GET: %q", got)
	}
	meshtest.WaitFor(t, "the server closing the idle connection", func() bool { return closed.Load() >= 1 })
	// Not peeked: sent into the closed connection, then resent.
	if got := getBody(t, c); got != "ok" {
		t.Fatalf("GET after the close: %q", got)
	}
	if n := st.UpstreamCxIdleClosed.Load(); n != 0 {
		t.Fatalf("idle check ran for a recently used connection (%d closes found)", n)
	}
	if n := st.UpstreamCxTotal.Load(); n != 2 {
		t.Fatalf("%d connections opened, want 2 (the resend's fresh one)", n)
	}
	// A POST is checked: the closed connection is found, not written to.
	meshtest.WaitFor(t, "the server closing the second connection", func() bool { return closed.Load() >= 2 })
	if code, err := post(c, "payload"); err != nil || code != 200 {
		t.Fatalf("POST after the close: %d, %v", code, err)
	}
	if n := st.UpstreamCxIdleClosed.Load(); n != 1 {
		t.Fatalf("idle check found %d closed connections for the POST, want 1", n)
	}
}
