package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/jwks"
	"github.com/weftmesh/weft/internal/controlplane/store"
	"github.com/weftmesh/weft/internal/controlplane/xds"
)

// maxBody bounds apply/delete request bodies.
const maxBody = 16 << 20

// API paths of the monitoring server, shared with the CLI.
const (
	PathApply   = "/api/v1/apply"
	PathDelete  = "/api/v1/delete"
	PathConfig  = "/api/v1/config"
	PathStatus  = "/api/v1/status"
	PathProxies = "/api/v1/proxies"
	// PathDescribe + "/NAME/mtls": the mutual TLS a proxy's workload gets, and why.
	PathDescribe = "/api/v1/describe"
)

// ErrorBody is the JSON of a failed API call.
type ErrorBody struct {
	Errors []string `json:"errors"`
}

// ChangeBody is the JSON answer of apply and delete.
type ChangeBody struct {
	Results []store.Result `json:"results"`
}

// ConfigItem is one resource in a get answer.
type ConfigItem struct {
	Kind      config.Kind `json:"kind"`
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	File      string      `json:"file"`
	YAML      string      `json:"yaml"`
}

// StatusBody is the JSON of /api/v1/status.
type StatusBody struct {
	Files         []store.FileStatus `json:"files"`
	RegistryError string             `json:"registryError,omitempty"`
	Proxies       []xds.ProxyStatus  `json:"proxies"`
	// JWKS is the fetch state of every RequestAuthentication jwksUri.
	JWKS []jwks.Status `json:"jwks,omitempty"`
}

// mux records its patterns, so a test can walk every endpoint (for key
// material, say) and a new one cannot be missed.
type mux struct {
	*http.ServeMux
	patterns []string
}

func (m *mux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

func (s *Server) routes() http.Handler {
	mux := &mux{ServeMux: http.NewServeMux()}
	defer func() { s.patterns = mux.patterns }()
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.HandleFunc("POST "+PathApply, s.admin(s.handleApply))
	mux.HandleFunc("POST "+PathDelete, s.admin(s.handleDeleteDocs))
	mux.HandleFunc("DELETE "+PathConfig+"/{kind}/{namespace}/{name}", s.admin(s.handleDelete))
	mux.HandleFunc("GET "+PathConfig, s.handleGet)
	mux.HandleFunc("GET "+PathStatus, s.handleStatus)
	mux.HandleFunc("GET "+PathProxies, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.xds.Status()) })
	mux.HandleFunc("GET "+PathProxies+"/{name}/config_dump", s.handleConfigDump)
	mux.HandleFunc("GET "+PathDescribe+"/{name}/mtls", s.handleDescribeMTLS)
	s.debugRoutes(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	var el config.ErrorList
	body := ErrorBody{}
	if errors.As(err, &el) {
		for _, e := range el {
			body.Errors = append(body.Errors, e.Error())
		}
	} else {
		body.Errors = []string{err.Error()}
	}
	writeJSON(w, code, body)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("reading request: %w", err))
		return nil, false
	}
	return b, true
}

func loadOpts(r *http.Request) config.Options {
	return config.Options{DefaultNamespace: r.URL.Query().Get("namespace")}
}

func sourceName(r *http.Request) string {
	if n := r.URL.Query().Get("name"); n != "" {
		return n
	}
	return config.StdinName
}

func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	res, err := s.store.Apply(sourceName(r), b, loadOpts(r))
	s.audit(r, "apply", res, err)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, ChangeBody{Results: res})
}

func (s *Server) handleDeleteDocs(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	res, err := s.store.DeleteDocs(sourceName(r), b, loadOpts(r))
	s.audit(r, "delete", res, err)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, ChangeBody{Results: res})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	k := config.Key{Kind: config.Kind(r.PathValue("kind")), Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	res, err := s.store.Delete([]config.Key{k})
	if err != nil {
		s.log.Info("api change", "who", who(r), "op", "delete", "kind", k.Kind, "namespace", k.Namespace, "name", k.Name, "result", "failed", "err", err)
		writeErr(w, http.StatusNotFound, err)
		return
	}
	s.audit(r, "delete", res, nil)
	writeJSON(w, http.StatusOK, ChangeBody{Results: res})
}

// audit logs who changed what: one line per resource, or one line for a
// call that failed as a whole (nothing of it was applied).
func (s *Server) audit(r *http.Request, op string, res []store.Result, err error) {
	if err != nil {
		s.log.Info("api change", "who", who(r), "op", op, "source", sourceName(r), "result", "rejected", "err", err)
		return
	}
	for _, c := range res {
		s.log.Info("api change", "who", who(r), "op", op, "kind", c.Key.Kind, "namespace", c.Key.Namespace, "name", c.Key.Name, "file", c.File, "result", c.Action)
	}
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	items := []ConfigItem{}
	for _, e := range s.store.Get(config.Kind(q.Get("kind")), q.Get("namespace"), q.Get("name")) {
		doc := e.YAML
		if e.Resource.Kind == config.KindSecret && !isAdmin(r) {
			doc = RedactSecretYAML(doc) // with the token, shown as kubectl does
		}
		items = append(items, ConfigItem{Kind: e.Resource.Kind, Namespace: e.Resource.Namespace, Name: e.Resource.Name, File: e.File, YAML: string(doc)})
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	berr := s.buildErr
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, StatusBody{Files: s.store.Status(), RegistryError: berr, Proxies: s.xds.Status(), JWKS: s.jwks.Status()})
}

func (s *Server) handleConfigDump(w http.ResponseWriter, r *http.Request) {
	id, err := s.xds.FindProxy(r.PathValue("name"))
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	dump, err := s.xds.ConfigDump(id)
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(dump)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Weft-Proxy", id)
	w.Write(b)
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	var b strings.Builder
	s.xds.Metrics().WriteTo(&b)
	s.store.WriteMetrics(&b)
	s.sec.svc.WriteMetrics(&b)
	s.jwks.WriteMetrics(&b)
	io.WriteString(w, b.String())
}

func (s *Server) handleDescribeMTLS(w http.ResponseWriter, r *http.Request) {
	id, err := s.xds.FindProxy(r.PathValue("name"))
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	d, err := s.xds.DescribeMTLS(id)
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
