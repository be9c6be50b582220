// Package external stands in for a site outside the mesh (edition.cnn.com,
// httpbin.org, www.google.com …) so Istio's egress tasks (ServiceEntry,
// REGISTRY_ONLY, egress gateways, TLS origination) run without internet. It
// serves plain HTTP and HTTPS with a certificate from its own CA, whose PEM
// a test hands to clients or to a DestinationRule.
package external

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/weftmesh/weft/internal/samples/httpbin"
)

// Config configures the site.
type Config struct {
	// Hosts are the names the site serves; the certificate covers all.
	Hosts []string
	// RedirectHTTP answers plain HTTP with 301 to https://<host><path>, as
	// edition.cnn.com does (the TLS-origination task shows it).
	RedirectHTTP bool
	Log          *slog.Logger
}

// Handler answers like a site: httpbin's paths (/headers, /get, /delay/…,
// /status/…) in httpbin.org's JSON shape, and for any other path a 200 page
// naming the host and echoing the request headers.
func Handler(cfg Config) http.Handler {
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(w, "%s (weft external sample)\n%s %s %s via %s\n\n", hostOnly(r.Host), r.Method, r.URL.RequestURI(), r.Proto, scheme)
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		// The address that served the request tells a test which
		// endpoint a connection reached (the same names on several IPs).
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			fmt.Fprintf(w, "Served-On: %s\n", a)
		}
		fmt.Fprintf(w, "Host: %s\n", r.Host)
		for _, k := range keys {
			for _, v := range r.Header[k] {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
	})
	h := httpbin.New(httpbin.Config{Classic: true, Fallback: site})
	if !cfg.RedirectHTTP {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Redirect(w, r, "https://"+hostOnly(r.Host)+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}

// TLSConfig is the HTTPS server config: the site certificate, HTTP/2 and
// HTTP/1.1 by ALPN, and when clientCAs is set, required client
// certificates verified against it (for mutual TLS origination).
func TLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}
