package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// MergedHandler serves Istio's merged metrics endpoint (15020
// /stats/prometheus): the proxy's own exposition (proxy) followed by the
// application's (appURL, as Istio does for pods with prometheus.io scrape
// annotations). An app that cannot be scraped is logged and left out; the
// proxy's series are still served.
func MergedHandler(proxy http.Handler, appURL string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferWriter{h: http.Header{}}
		proxy.ServeHTTP(rec, r.Clone(context.WithoutCancel(r.Context())))
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(rec.buf.Bytes())
		if appURL == "" {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, appURL, nil)
		if err != nil {
			log.Warn("app metrics: bad URL", "url", appURL, "err", err)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			log.Warn("app metrics: scrape failed", "url", appURL, "err", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			log.Warn("app metrics: scrape failed", "url", appURL, "status", resp.StatusCode)
			return
		}
		if b := rec.buf.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
			io.WriteString(w, "\n")
		}
		io.Copy(w, io.LimitReader(resp.Body, 64<<20))
	})
	return mux
}

// bufferWriter collects a handler's body.
type bufferWriter struct {
	h   http.Header
	buf bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.h }
func (b *bufferWriter) WriteHeader(int)             {}
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
