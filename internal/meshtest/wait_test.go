package meshtest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = strings.TrimSpace(format)
	for _, a := range args {
		if e, ok := a.(error); ok {
			r.failed += " " + e.Error()
		}
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, "third call", 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
	r := &recorder{TB: t}
	Eventually(r, "never", 100*time.Millisecond, func() error { return errors.New("still false") })
	if !strings.Contains(r.failed, "still false") {
		t.Fatalf("Eventually on a false condition reported %q", r.failed)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, "third call", func() bool { n++; return n >= 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}
