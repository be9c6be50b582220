package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// sourceName says where config comes from, for the log.
func (s *Server) sourceName() string {
	if s.store != nil {
		return s.store.Root()
	}
	return fmt.Sprintf("%T", s.src)
}

// sourceRoutes serves the directory-only API (apply, delete, get, file
// status) only when the config comes from a directory. With another
// source (the Kubernetes API server is the source of truth there) those
// calls answer 501 and point at the right tool.
func (s *Server) sourceRoutes(h http.Handler) http.Handler {
	if s.store != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == PathApply, p == PathDelete, p == PathConfig, strings.HasPrefix(p, PathConfig+"/"), p == "/debug/configz":
			writeErr(w, http.StatusNotImplemented, fmt.Errorf("config comes from the Kubernetes API server: use kubectl (or weft analyze -k)"))
		case p == PathStatus:
			s.mu.Lock()
			berr := s.buildErr
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, StatusBody{RegistryError: berr, Proxies: s.xds.Status(), JWKS: s.jwks.Status()})
		case p == "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			var b strings.Builder
			s.xds.Metrics().WriteTo(&b)
			io.WriteString(w, b.String())
		default:
			h.ServeHTTP(w, r)
		}
	})
}
