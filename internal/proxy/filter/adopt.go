package filter

import "net/http"

// HeaderAdopter is an optional interface of a response writer: it takes
// an upstream response's header map as its own, instead of having every
// field copied into the map Header returns. It refuses (false, nothing
// changed) once the response started or when its own map already holds
// fields (a filter staged some). After a true return the writer owns h:
// the caller reads and changes the response's fields through Header, and
// neither it nor anything else may keep h: once the response is written
// the writer may clear h and reuse it for another head (h1head.PutHeader).
// Profile (bench server sidecar, max-h1): the router's copy of the
// upstream response's fields was about 2% of the proxy's CPU.
type HeaderAdopter interface {
	AdoptHeader(h http.Header) bool
}
