// Package helloworld is Istio's helloworld sample: GET /hello answers
// "Hello version: <v>, instance: <name>".
package helloworld

import (
	"fmt"
	"net/http"
)

// New returns the handler for version and instance name.
func New(version, instance string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello version: %s, instance: %s\n", version, instance)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	return mux
}
