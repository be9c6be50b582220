package cluster

import (
	"context"
	"sync"
	"time"
)

// ctxWatch poisons an upstream HTTP/1.1 connection when the context of
// the request it carries ends, so a read or write blocked on the upstream
// fails at once. Profile (BenchmarkProxiedGET, issue 17): a
// context.AfterFunc per request was 5 of the proxy's ~20 allocations
// (its context, the stop closure, the parent's Done channel and children
// map) and about 3% of a sidecar's CPU, for requests that almost all end
// within milliseconds and are never cancelled. A request whose context
// has no deadline (a client hang-up or the stream idle timer ends it) is
// watched only once it has run for watchAfter, with one timer per
// connection; a context with a deadline (route and per-try timeouts) or
// one already done is watched at once, as before. So a cancellation
// reaches a young request at most watchAfter late (the lean HTTP/1 path
// notices a hang-up only after 25 ms anyway).
type ctxWatch struct {
	poison func()
	t      *time.Timer
	mu     sync.Mutex
	ctx    context.Context // the request watched; nil between requests
	stopf  func() bool     // context.AfterFunc's, once registered
}

// watchAfter is how long a request without a deadline runs before its
// connection watches its context. Not shorter than the lean HTTP/1
// path's hang-up timer (25 ms), armed just before: a timer that becomes
// the earliest of its P's makes Go's runtime wake the network poller
// (a system call and a thread wake-up per request on a lightly loaded
// proxy), and this one never is.
const watchAfter = 30 * time.Millisecond

func newCtxWatch(poison func()) *ctxWatch {
	w := &ctxWatch{poison: poison}
	w.t = time.AfterFunc(time.Hour, w.fire)
	w.t.Stop()
	return w
}

// start watches ctx until stop.
func (w *ctxWatch) start(ctx context.Context) {
	_, deadline := ctx.Deadline()
	if deadline || ctx.Err() != nil {
		s := context.AfterFunc(ctx, w.poison)
		w.mu.Lock()
		w.ctx, w.stopf = ctx, s
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	w.t.Reset(watchAfter)
}

// fire registers the watch of a request that ran for watchAfter. A late
// call (the request ended, or the next one started) does nothing harmful:
// it finds no context, or registers the current one early.
func (w *ctxWatch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx != nil && w.stopf == nil {
		// On a context already done this starts poison on a goroutine.
		w.stopf = context.AfterFunc(w.ctx, w.poison)
	}
}

// stop ends the watch; false when the context ended and the connection
// was poisoned (or is about to be).
func (w *ctxWatch) stop() bool {
	w.mu.Lock()
	s := w.stopf
	w.ctx, w.stopf = nil, nil
	w.mu.Unlock()
	w.t.Stop()
	if s != nil {
		return s()
	}
	return true
}
