package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// DebugEndpoint is one /debug page of the monitoring server, in the
// spirit of istiod's debug interface.
type DebugEndpoint struct {
	Path, Help string
}

// DebugEndpoints lists the /debug pages (weft control-plane --help prints them).
var DebugEndpoints = []DebugEndpoint{
	{"/debug", "this list"},
	{"/debug/syncz", "per proxy and xDS type: sent, ACKed and NACKed versions (JSON)"},
	{"/debug/configz", "the config being served: kind, namespace, name, file (JSON)"},
	{"/debug/registryz", "the service registry: services, ports and endpoints (JSON)"},
	{"/debug/config_dump?proxyID=ID", "the xDS a proxy was last sent, as Envoy's /config_dump (JSON)"},
	{"/debug/pprof/profile?seconds=N", "Go CPU profile (admin token); /debug/pprof/heap, allocs, goroutine …"},
}

func (s *Server) debugRoutes(mux *mux) {
	s.pprofRoutes(mux)
	mux.HandleFunc("GET /debug", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, e := range DebugEndpoints {
			fmt.Fprintf(w, "%-34s %s\n", e.Path, e.Help)
		}
	})
	mux.HandleFunc("GET /debug/syncz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.xds.Status()) })
	mux.HandleFunc("GET /debug/configz", func(w http.ResponseWriter, r *http.Request) {
		type item struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			File      string `json:"file"`
		}
		out := []item{}
		for _, e := range s.store.Get("", "", "") {
			out = append(out, item{string(e.Resource.Kind), e.Resource.Namespace, e.Resource.Name, e.File})
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /debug/registryz", func(w http.ResponseWriter, r *http.Request) {
		snap := s.xds.Snapshot()
		out := []*model.Service{}
		if snap != nil {
			out = append(out, snap.Services...)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /debug/config_dump", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxyID")
		if strings.TrimSpace(id) == "" {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("proxyID is required (a node id, name.namespace or workload name)"))
			return
		}
		r.SetPathValue("name", id)
		s.handleConfigDump(w, r)
	})
}
