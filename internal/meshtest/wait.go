package meshtest

import (
	"testing"
	"time"
)

// Eventually calls cond until it returns nil, and fails t with what and
// cond's last error if within passes first. Tests poll with a deadline
// instead of sleeping for a guessed time.
func Eventually(t testing.TB, what string, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, within, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitFor polls cond (every few milliseconds, for in-process state such as
// counters) until it holds, and fails t naming what after 10 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
