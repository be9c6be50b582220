package server

import (
	"fmt"
	"net/http"
	"runtime/pprof"
	"strconv"
	"time"
)

// pprofRoutes serves Go's profiles (the format `go tool pprof` reads) to
// the admin token holder: /debug/pprof/profile?seconds=N (CPU, default
// 30, at most 300) and /debug/pprof/NAME for heap, allocs, goroutine,
// block, mutex and threadcreate. Profiles hold stacks and sizes, never
// memory contents, but they are an operator's tool, hence the token.
func (s *Server) pprofRoutes(mux *mux) {
	mux.HandleFunc("GET /debug/pprof/profile", s.admin(func(w http.ResponseWriter, r *http.Request) {
		secs := 30
		if v := r.URL.Query().Get("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 300 {
				http.Error(w, "seconds: want 1 to 300", http.StatusBadRequest)
				return
			}
			secs = n
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, "CPU profile: "+err.Error(), http.StatusConflict) // one at a time
			return
		}
		select {
		case <-time.After(time.Duration(secs) * time.Second):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
	}))
	mux.HandleFunc("GET /debug/pprof/{name}", s.admin(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		switch name {
		case "heap", "allocs", "goroutine", "block", "mutex", "threadcreate":
		default:
			http.Error(w, fmt.Sprintf("no profile %q (heap, allocs, goroutine, block, mutex, threadcreate, profile)", name), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		pprof.Lookup(name).WriteTo(w, 0)
	}))
}
