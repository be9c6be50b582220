package samples

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Shutdown is how a sample server stops when its context ends (SIGTERM),
// the way Kubernetes asks of apps behind a Service: a terminating pod's
// endpoint leaves the clients' load balancers only once the EndpointSlice
// update has reached them (and, in a mesh, the control plane has pushed
// it), so an app that stops listening at the signal refuses the requests
// still on their way. With a Delay the server keeps serving that long
// after the signal, answering with Connection: close so that pooled
// connections move on; then it stops accepting and gives the requests in
// flight up to Timeout.
// https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
type Shutdown struct {
	// Delay is how long to keep serving after the signal (0: stop at once).
	Delay time.Duration
	// Timeout bounds the wait for requests in flight once the listeners
	// are closed (0: DefaultShutdownTimeout).
	Timeout time.Duration
	// Abort, when it closes, ends the delay at once (a second signal).
	Abort <-chan struct{}
}

// DefaultShutdownTimeout is how long requests in flight get by default.
const DefaultShutdownTimeout = 3 * time.Second

// terminating marks every response Connection: close once the delay has
// begun.
type terminating struct{ on atomic.Bool }

func (t *terminating) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.on.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// delay serves on for sd.Delay (or until Abort, or a server fails, whose
// error it returns).
func (sd Shutdown) delay(log *slog.Logger, t *terminating, errc <-chan error) error {
	if sd.Delay <= 0 {
		return nil
	}
	t.on.Store(true)
	log.Info("terminating: serving on while the endpoint is withdrawn", "delay", sd.Delay)
	timer := time.NewTimer(sd.Delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-sd.Abort:
		log.Info("terminating: delay cut short")
	case err := <-errc:
		return err
	}
	log.Info("terminating: no new connections, finishing requests in flight")
	return nil
}
