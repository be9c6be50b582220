package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestCtxWatch: a cancelled request is poisoned whether it is young (the
// lazy watch registers late) or has a deadline (watched at once); a
// request that ended is never poisoned by its context ending later.
func TestCtxWatch(t *testing.T) {
	waitPoison := func(t *testing.T, n *atomic.Int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for n.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("connection not poisoned after its context ended")
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Run("young request cancelled", func(t *testing.T) {
		var n atomic.Int32
		w := newCtxWatch(func() { n.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		w.start(ctx)
		cancel()
		waitPoison(t, &n)
		if w.stop() {
			t.Fatal("stop reported a clean connection after the poison")
		}
	})
	t.Run("deadline watched at once", func(t *testing.T) {
		var n atomic.Int32
		w := newCtxWatch(func() { n.Add(1) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		w.start(ctx)
		if w.stopf == nil {
			t.Fatal("a context with a deadline is not watched at once")
		}
		cancel()
		waitPoison(t, &n)
		w.stop()
	})
	t.Run("already done", func(t *testing.T) {
		var n atomic.Int32
		w := newCtxWatch(func() { n.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w.start(ctx)
		waitPoison(t, &n)
		w.stop()
	})
	t.Run("ended before its context", func(t *testing.T) {
		var n atomic.Int32
		w := newCtxWatch(func() { n.Add(1) })
		for i := 0; i < 3; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			w.start(ctx)
			if i == 2 {
				time.Sleep(2 * watchAfter) // registered
			}
			if !w.stop() {
				t.Fatal("stop of a live request reported a poison")
			}
			cancel()
		}
		// The timer of a stopped watch and AfterFunc's goroutine would run
		// within this; the count is checked after.
		time.Sleep(3 * watchAfter)
		if n.Load() != 0 {
			t.Fatalf("poisoned %d times by contexts that ended after their request", n.Load())
		}
	})
}
