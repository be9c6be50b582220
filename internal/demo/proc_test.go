package demo

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSupervise: a process that keeps dying is restarted with backoff and
// each crash and restart is reported; stop ends both the process and the
// supervision.
func TestSupervise(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	report := func(m string) {
		mu.Lock()
		msgs = append(msgs, m)
		mu.Unlock()
	}
	p, err := startProc("crasher", t.TempDir(), nil, "/bin/sh", "-c", "sleep 0.05; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	p.supervise(report)
	deadline := time.Now().Add(20 * time.Second)
	for p.Restarts() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("restarts %d after 20s; reports: %q", p.Restarts(), msgs)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	p.stop(time.Second)
	select {
	case <-p.unwatch:
	case <-time.After(10 * time.Second):
		t.Fatal("supervision still running after stop")
	}
	n := p.Restarts()
	mu.Lock()
	all := strings.Join(msgs, "\n")
	mu.Unlock()
	for _, want := range []string{"crasher exited (exit status 3)", "restarting in 500ms (restart 1", "restarting in 1s (restart 2", "crasher restarted (pid "} {
		if !strings.Contains(all, want) {
			t.Errorf("reports lack %q:\n%s", want, all)
		}
	}
	if !p.exited() {
		t.Error("process still running after stop")
	}
	if p.Restarts() != n {
		t.Error("restarted after stop")
	}
}
