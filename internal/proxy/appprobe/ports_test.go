package appprobe

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The postStart hook answers only once the app listens, and answers 200
// anyway when the bound passes (a failed hook would kill the container).
func TestPortsHandlerWaitsForTheApp(t *testing.T) {
	// A free port nobody listens on yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	h := httptest.NewServer(PortsHandler(time.Minute, slog.New(slog.DiscardHandler)))
	defer h.Close()
	type result struct {
		code int
		body string
		at   time.Time
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(h.URL + PortsPath + strconv.Itoa(port))
		if err != nil {
			got <- result{code: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp.StatusCode, string(b), time.Now()}
	}()
	select {
	case r := <-got:
		t.Fatalf("answered before the app listened: %d %s", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	listened := time.Now()
	app, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	r := <-got
	if r.code != 200 || !strings.HasPrefix(r.body, "listening") || r.at.Before(listened) {
		t.Fatalf("after the app listened: %d %q", r.code, r.body)
	}

	// Bounded: a port that never listens still lets the container start.
	short := httptest.NewServer(PortsHandler(200*time.Millisecond, slog.New(slog.DiscardHandler)))
	defer short.Close()
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	never := l2.Addr().(*net.TCPAddr).Port
	l2.Close()
	resp, err := http.Get(short.URL + PortsPath + strconv.Itoa(port) + "," + strconv.Itoa(never))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "port "+strconv.Itoa(never)+" not listening") {
		t.Fatalf("bound passed: %d %q", resp.StatusCode, b)
	}

	for _, bad := range []string{"", "x", "0", "70000", "80,"} {
		resp, err := http.Get(short.URL + PortsPath + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", bad, resp.StatusCode)
		}
	}
}

func TestParseListening(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2378 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0F4DF40A:3AA6 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 2 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
`
	got := map[int][]string{}
	parseListening(table, got)
	if len(got) != 2 || len(got[8080]) != 0 {
		t.Fatalf("listening ports %v, want 9080 and 15014 (8080 is an established socket)", got)
	}
	if s := strings.Join(got[9080], ";"); s != "127.0.0.1:9080 uid 0" {
		t.Errorf("9080: %s", s)
	}
	if s := strings.Join(got[15014], ";"); s != "10.244.77.15:15014 uid 1337" {
		t.Errorf("15014: %s", s)
	}
	v6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2378 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 7 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000F4DF40A:3AA6 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 8 1 0 100 0 0 10 0
   2: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 9 1 0 100 0 0 10 0
`
	got = map[int][]string{}
	parseListening(v6, got)
	want := map[int]string{9080: "[::]:9080 uid 65532", 15014: "[::ffff:10.244.77.15]:15014 uid 1337", 8080: "[::1]:8080 uid 1337"}
	for p, w := range want {
		if s := strings.Join(got[p], ";"); s != w {
			t.Errorf("tcp6 %d: %s, want %s", p, s, w)
		}
	}
}
