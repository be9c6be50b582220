package load

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// breaker answers 503 when more than one request is in flight, like a
// circuit breaker with maxConnections 1 and no pending queue.
func breaker(hold time.Duration) http.Handler {
	var inflight atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight.Add(1) > 1 {
			inflight.Add(-1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		time.Sleep(hold)
		inflight.Add(-1)
	})
}

func TestRun(t *testing.T) {
	srv := httptest.NewServer(breaker(5 * time.Millisecond))
	defer srv.Close()
	tests := []struct {
		name      string
		o         Options
		want503   bool
		wantTotal int
	}{
		{"one connection never trips", Options{URL: srv.URL, Connections: 1, Requests: 20}, false, 20},
		{"three connections trip", Options{URL: srv.URL, Connections: 3, Requests: 60}, true, 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Run(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != tc.wantTotal || r.Codes[200]+r.Codes[503] != tc.wantTotal {
				t.Fatalf("codes %v, want %d requests", r.Codes, tc.wantTotal)
			}
			if (r.Codes[503] > 0) != tc.want503 {
				t.Errorf("codes %v, want 503s: %v", r.Codes, tc.want503)
			}
			var out bytes.Buffer
			r.Print(&out)
			if !strings.Contains(out.String(), "Code 200 : ") {
				t.Errorf("summary lacks the Code 200 line:\n%s", out.String())
			}
		})
	}
}

func TestRateAndDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	r, err := Run(context.Background(), Options{URL: srv.URL, Connections: 2, QPS: 100, Requests: 20})
	if err != nil {
		t.Fatal(err)
	}
	// 20 requests at 100/s: the last ones leave after about 200 ms.
	if r.Elapsed < 150*time.Millisecond || r.Codes[200] != 20 {
		t.Errorf("20 requests at 100 qps took %v, codes %v", r.Elapsed, r.Codes)
	}
	r, err = Run(context.Background(), Options{URL: srv.URL, Connections: 2, Duration: 200 * time.Millisecond, QPS: 50})
	if err != nil {
		t.Fatal(err)
	}
	if r.Elapsed < 200*time.Millisecond || r.Elapsed > 2*time.Second || r.Requests == 0 || r.Codes[-1] != 0 {
		t.Errorf("duration run: %v, codes %v", r.Elapsed, r.Codes)
	}
}

func TestTransportErrors(t *testing.T) {
	r, err := Run(context.Background(), Options{URL: "http://127.0.0.1:1/", Connections: 1, Requests: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Codes[-1] != 3 {
		t.Errorf("codes %v, want three -1", r.Codes)
	}
}
