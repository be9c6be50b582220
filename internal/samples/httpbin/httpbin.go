// Package httpbin is a sample HTTP echo service answering like httpbin, the
// backend of many Istio tasks (Istio ships go-httpbin; the mirroring task
// and the public httpbin.org use the original Python httpbin, whose JSON has
// one string per header: Config.Classic selects that shape).
package httpbin

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// VersionHeader is the response header carrying Config.Version, so a client
// can tell which deployment (v1, v2 …) answered.
const VersionHeader = "X-Sample-Version"

// Limits keep bad requests from tying the server up.
const (
	maxDelay = 10 * time.Second
	maxBytes = 10 << 20
	maxBody  = 1 << 20
)

// Config configures the handler.
type Config struct {
	// Version is reported in VersionHeader on every response ("" omits it).
	Version string
	// Classic renders headers and form values as single strings, as the
	// Python httpbin does; the default is go-httpbin's arrays.
	Classic bool
	// Fallback answers paths httpbin does not know (nil: 404).
	Fallback http.Handler
	// Float returns a number in [0,1) for /status weights (nil: math/rand).
	Float func() float64
}

type server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the httpbin handler.
func New(cfg Config) http.Handler {
	if cfg.Float == nil {
		cfg.Float = rand.Float64
	}
	s := &server{cfg: cfg, mux: http.NewServeMux()}
	get := func(h http.HandlerFunc) http.HandlerFunc { return methods(h, http.MethodGet, http.MethodHead) }
	s.mux.HandleFunc("/get", get(s.get))
	s.mux.HandleFunc("/headers", get(s.headers))
	s.mux.HandleFunc("/ip", get(s.ip))
	s.mux.HandleFunc("/user-agent", get(s.userAgent))
	s.mux.HandleFunc("/status/{codes}", s.status)
	s.mux.HandleFunc("/delay/{seconds}", s.delay)
	s.mux.HandleFunc("/anything", s.anything)
	s.mux.HandleFunc("/anything/", s.anything)
	s.mux.HandleFunc("/post", methods(s.anything, http.MethodPost))
	s.mux.HandleFunc("/put", methods(s.anything, http.MethodPut))
	s.mux.HandleFunc("/patch", methods(s.anything, http.MethodPatch))
	s.mux.HandleFunc("/delete", methods(s.anything, http.MethodDelete))
	s.mux.HandleFunc("/response-headers", s.responseHeaders)
	s.mux.HandleFunc("/bytes/{n}", get(s.bytes))
	s.mux.HandleFunc("/{$}", get(s.index))
	if cfg.Fallback != nil {
		s.mux.Handle("/", cfg.Fallback)
	}
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Version != "" {
		w.Header().Set(VersionHeader, s.cfg.Version)
	}
	s.mux.ServeHTTP(w, r)
}

func methods(h http.HandlerFunc, allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, m := range allowed {
			if r.Method == m {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "httpbin (weft sample)\n\n"+
		"/get /headers /ip /user-agent /status/{code[:weight],…} /delay/{seconds}\n"+
		"/anything[/…] /post /put /patch /delete /response-headers?k=v /bytes/{n}\n")
}

// requestHeaders renders the request headers with the Host header added, as
// httpbin does (Go moves Host out of r.Header).
func (s *server) requestHeaders(r *http.Request) any {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	if s.cfg.Classic {
		out := make(map[string]string, len(h))
		for k, v := range h {
			out[k] = strings.Join(v, ",")
		}
		return out
	}
	return map[string][]string(h)
}

func (s *server) values(v url.Values) any {
	if v == nil {
		v = url.Values{}
	}
	if s.cfg.Classic {
		out := make(map[string]any, len(v))
		for k, vs := range v {
			if len(vs) == 1 {
				out[k] = vs[0]
			} else {
				out[k] = vs
			}
		}
		return out
	}
	return map[string][]string(v)
}

// origin is the client address: the first X-Forwarded-For entry if a proxy
// set one, else the peer IP.
func origin(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		return strings.TrimSpace(strings.Split(xff, ",")[0])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func fullURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func (s *server) getBody(r *http.Request) map[string]any {
	return map[string]any{
		"args":    s.values(r.URL.Query()),
		"headers": s.requestHeaders(r),
		"method":  r.Method,
		"origin":  origin(r),
		"url":     fullURL(r),
	}
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.getBody(r))
}

func (s *server) headers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"headers": s.requestHeaders(r)})
}

func (s *server) ip(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"origin": origin(r)})
}

func (s *server) userAgent(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"user-agent": r.UserAgent()})
}

// anything echoes the request including its body, form and JSON.
func (s *server) anything(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	out := s.getBody(r)
	out["data"] = string(body)
	out["files"] = map[string]any{}
	out["form"] = s.values(nil)
	out["json"] = nil
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		if f, err := url.ParseQuery(string(body)); err == nil {
			out["form"] = s.values(f)
		}
	case "application/json":
		var j any
		if json.Unmarshal(body, &j) == nil {
			out["json"] = j
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// status answers with one of the listed codes; "200,500" picks uniformly,
// "200:0.9,500:0.1" by weight, as httpbin does.
func (s *server) status(w http.ResponseWriter, r *http.Request) {
	code, err := pickStatus(r.PathValue("codes"), s.cfg.Float())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusUseProxy, http.StatusTemporaryRedirect:
		w.Header().Set("Location", "/redirect/1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="Fake Realm"`)
	case http.StatusTeapot:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, "I'm a teapot!")
		return
	}
	w.WriteHeader(code)
}

func pickStatus(spec string, x float64) (int, error) {
	type choice struct {
		code   int
		weight float64
	}
	var cs []choice
	total := 0.0
	for _, part := range strings.Split(spec, ",") {
		c, w, hasW := strings.Cut(strings.TrimSpace(part), ":")
		code, err := strconv.Atoi(c)
		if err != nil || code < 100 || code > 599 {
			return 0, fmt.Errorf("invalid status code %q", c)
		}
		weight := 1.0
		if hasW {
			weight, err = strconv.ParseFloat(w, 64)
			if err != nil || weight < 0 || math.IsNaN(weight) || math.IsInf(weight, 0) {
				return 0, fmt.Errorf("invalid weight %q", w)
			}
		}
		cs = append(cs, choice{code, weight})
		total += weight
	}
	if total <= 0 {
		return 0, fmt.Errorf("weights of %q sum to zero", spec)
	}
	x *= total
	for _, c := range cs {
		if x < c.weight {
			return c.code, nil
		}
		x -= c.weight
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].weight > 0 {
			return cs[i].code, nil
		}
	}
	return cs[len(cs)-1].code, nil
}

// delay answers like /get after the given seconds (fractions allowed,
// capped at 10 s like httpbin); a client that goes away ends it early.
func (s *server) delay(w http.ResponseWriter, r *http.Request) {
	sec, err := strconv.ParseFloat(r.PathValue("seconds"), 64)
	if err != nil || sec < 0 || math.IsNaN(sec) {
		http.Error(w, "invalid delay", http.StatusBadRequest)
		return
	}
	d := maxDelay
	if sec < maxDelay.Seconds() {
		d = time.Duration(sec * float64(time.Second))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	writeJSON(w, http.StatusOK, s.getBody(r))
}

// responseHeaders sets each query parameter as a response header and echoes
// them as JSON.
func (s *server) responseHeaders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validHeaderName(k) {
			http.Error(w, fmt.Sprintf("invalid header name %q", k), http.StatusBadRequest)
			return
		}
		for _, v := range q[k] {
			if strings.ContainsAny(v, "\r\n\x00") {
				http.Error(w, fmt.Sprintf("invalid value for header %q", k), http.StatusBadRequest)
				return
			}
			w.Header().Add(k, v)
		}
	}
	writeJSON(w, http.StatusOK, s.values(q))
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c > 126 || c <= 32 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// bytes returns n random bytes (?seed=N makes them reproducible).
func (s *server) bytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > maxBytes {
		http.Error(w, fmt.Sprintf("invalid byte count (0..%d)", maxBytes), http.StatusBadRequest)
		return
	}
	var src *rand.Rand
	if seed, err := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64); err == nil {
		src = rand.New(rand.NewPCG(seed, seed))
	} else {
		src = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(src.UintN(256))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Write(buf)
}
