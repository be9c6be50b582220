package server

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/weftmesh/weft/internal/controlplane/apiauth"
)

// The monitoring API is reachable by anything that can reach its port,
// including a web page the operator has open: a browser will send a
// cross-site "simple" request (POST with text/plain, no preflight) and,
// after DNS rebinding, even same-origin ones under a foreign Host. So:
//
//   - every request: Host must be an IP literal, localhost, the listen
//     host or an allowed name (DNS rebinding); an Origin, or a
//     Sec-Fetch-Site other than same-origin/none, must be this server's own
//     (cross-site requests);
//   - a request that presents a token must present the right one;
//   - writes need the admin token and a JSON/YAML body type (415
//     otherwise), which a browser cannot send cross-site without a
//     preflight that this server never answers;
//   - reads stay open to monitoring, but without the token Secret data is
//     redacted and any private-key PEM in a response is scrubbed.

type ctxKey struct{}

// isAdmin reports whether the request carried the admin token.
func isAdmin(r *http.Request) bool {
	v, _ := r.Context().Value(ctxKey{}).(bool)
	return v
}

// who names the caller for the audit log: the credential and the peer.
func who(r *http.Request) string {
	if isAdmin(r) {
		return "admin-token@" + r.RemoteAddr
	}
	return "anonymous@" + r.RemoteAddr
}

// hostAllowed: IP literals cannot be rebound; names must be known.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || host == "localhost" {
		return true
	}
	if lh, _, err := net.SplitHostPort(s.opts.MonitoringAddress); err == nil && strings.EqualFold(lh, host) {
		return true
	}
	for _, a := range s.opts.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(a, "."), host) {
			return true
		}
	}
	return false
}

// crossSite reports why a request looks like it comes from a web page of
// another site ("" when it does not).
func (s *Server) crossSite(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		host, ok := strings.CutPrefix(o, "http://")
		if !ok || !strings.EqualFold(host, r.Host) || !s.hostAllowed(host) {
			return fmt.Sprintf("foreign Origin %q", o)
		}
	}
	switch sf := r.Header.Get("Sec-Fetch-Site"); sf {
	case "", "same-origin", "none":
	default:
		return fmt.Sprintf("Sec-Fetch-Site %q", sf)
	}
	return ""
}

// guard applies the checks every request gets, then serves.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			s.refuse(w, r, http.StatusForbidden, fmt.Sprintf("Host %q not allowed (add it with --allowed-hosts)", r.Host))
			return
		}
		if why := s.crossSite(r); why != "" {
			s.refuse(w, r, http.StatusForbidden, "cross-site request refused: "+why)
			return
		}
		admin := false
		if h := r.Header.Get("Authorization"); h != "" {
			tok, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || !apiauth.Equal(strings.TrimSpace(tok), s.token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
				s.refuse(w, r, http.StatusUnauthorized, "invalid admin token")
				return
			}
			admin = true
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, admin))
		if admin {
			next.ServeHTTP(w, r)
			return
		}
		sw := &scrubWriter{w: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		sw.flush()
	})
}

// admin wraps a write: the token and a JSON or YAML body are required.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !isAdmin(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
			s.refuse(w, r, http.StatusUnauthorized, "this call needs the admin token (Authorization: Bearer …); weft finds it on its own for a local control plane, else use --token-file")
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			if !bodyTypeAllowed(r.Header.Get("Content-Type")) {
				s.refuse(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: want application/yaml or application/json", r.Header.Get("Content-Type")))
				return
			}
		}
		h(w, r)
	}
}

// bodyTypeAllowed: none of these is a CORS-safelisted type, so a browser
// must preflight them, and this server answers no preflight.
func bodyTypeAllowed(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json":
		return true
	}
	return false
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	s.log.Warn("api request refused", "peer", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", code, "reason", why)
	writeErr(w, code, fmt.Errorf("%s", why))
}

// pemKey matches a PEM private key block, raw or inside a JSON string
// (where newlines are "\n").
var pemKey = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END ([A-Z0-9 ]*)PRIVATE KEY-----`)

// ScrubPEM replaces private-key PEM blocks with a marker.
func ScrubPEM(b []byte) []byte {
	if !bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		return b
	}
	return pemKey.ReplaceAll(b, []byte("<redacted private key>"))
}

// scrubWriter buffers a response for an anonymous caller and scrubs key
// material from it: the last line of defence behind the explicit Secret
// redaction, should a new endpoint ever print one.
type scrubWriter struct {
	w       http.ResponseWriter
	code    int
	buf     bytes.Buffer
	written bool
}

func (sw *scrubWriter) Header() http.Header         { return sw.w.Header() }
func (sw *scrubWriter) Write(b []byte) (int, error) { return sw.buf.Write(b) }
func (sw *scrubWriter) WriteHeader(code int) {
	if !sw.written {
		sw.code, sw.written = code, true
	}
}

func (sw *scrubWriter) flush() {
	b := ScrubPEM(sw.buf.Bytes())
	sw.w.Header().Del("Content-Length")
	sw.w.WriteHeader(sw.code)
	sw.w.Write(b)
}
