package samples

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

func TestServeLogsAndShutsDown(t *testing.T) {
	var logs meshtest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	lns, err := Listen([]string{"127.0.0.1:0", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := LogRequests(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short")
	}))
	go func() { done <- ServeHTTP(ctx, log, h, lns) }()
	for _, ln := range lns {
		resp, err := http.Get("http://" + ln.Addr().String() + "/headers?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP did not return after cancel")
	}
	out := logs.String()
	for _, want := range []string{`request="GET /headers?x=1 HTTP/1.1"`, "status=418", "bytes=5"} {
		if strings.Count(out, want) != 2 {
			t.Errorf("log should have %q twice:\n%s", want, out)
		}
	}
}

func TestListenFailsCleanly(t *testing.T) {
	if _, err := Listen(nil); err == nil {
		t.Fatal("no addresses: want error")
	}
	if _, err := Listen([]string{"127.0.0.1:0", "not-an-address"}); err == nil {
		t.Fatal("bad address: want error")
	}
}

func TestPropagate(t *testing.T) {
	src := http.Header{}
	src.Set("X-Request-Id", "abc")
	src.Set("End-User", "jason")
	src.Set("Traceparent", "00-1-2-01")
	src.Set("B3", "1-2-1")
	src.Set("X-B3-Traceid", "t")
	src.Set("X-Not-Forwarded", "no")
	dst := http.Header{}
	Propagate(dst, src)
	for _, k := range []string{"X-Request-Id", "End-User", "Traceparent", "B3", "X-B3-Traceid"} {
		if dst.Get(k) != src.Get(k) {
			t.Errorf("%s: got %q want %q", k, dst.Get(k), src.Get(k))
		}
	}
	if dst.Get("X-Not-Forwarded") != "" {
		t.Error("unlisted header was forwarded")
	}
}
