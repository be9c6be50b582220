package router

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// A transport's body writer may still read a request body after its
// stream ended and the stream's pooled idle timer went to another stream
// (CI: the upstream h1 body copy of a finished request raced the next h2
// stream's startIdleCancel). A late read must neither race the new owner
// nor re-arm its timer; run with -race.
func TestIdleBodyReadAfterTimerReuse(t *testing.T) {
	for range 50 {
		_, cancel := context.WithCancelCause(context.Background())
		idle := startIdleCancel(cancel, time.Hour)
		body := idleBody{io.NopCloser(strings.NewReader(strings.Repeat("x", 20000))), idle, idle.gen.Load()}

		var wg sync.WaitGroup
		wg.Add(1)
		started := make(chan struct{})
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			for n := 0; ; n++ {
				if _, err := body.Read(buf); err != nil {
					return
				}
				if n == 0 {
					close(started)
				}
			}
		}()
		<-started
		idle.stop() // the stream ends while its body is still being read
		// The next streams take timers from the pool while the late reads run.
		var next []*idleTimer
		for range 4 {
			_, c := context.WithCancelCause(context.Background())
			next = append(next, startIdleCancel(c, 2*time.Hour))
		}
		wg.Wait()
		for _, n := range next {
			if n == idle && n.d != 2*time.Hour {
				t.Fatalf("reused timer's duration %v", n.d)
			}
			n.stop()
		}
	}
}
