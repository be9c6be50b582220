package filter

import (
	"net/http"
	"sync"
	"time"
)

// BodyUnblocker ends a downstream request-body read that is stuck on a
// silent client, by putting the read deadline in the past. It may be
// called from timers and context callbacks, but only ever acts while the
// handler runs: after Finish it does nothing (an HTTP/2 response writer
// must not be touched once its handler returned).
type BodyUnblocker struct {
	mu   sync.Mutex
	done bool
	rc   *http.ResponseController
}

// NewBodyUnblocker returns an unblocker for the request served through w.
func NewBodyUnblocker(w http.ResponseWriter) *BodyUnblocker {
	return &BodyUnblocker{rc: http.NewResponseController(w)}
}

// Unblock fails pending and future body reads, unless Finish was called.
func (u *BodyUnblocker) Unblock() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return
	}
	u.rc.SetReadDeadline(time.Unix(1, 0))
}

// Finish disables the unblocker; call it before the handler returns.
func (u *BodyUnblocker) Finish() {
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
}
