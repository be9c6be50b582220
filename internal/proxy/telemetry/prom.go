package telemetry

import (
	"bufio"
	"io"
	"sort"

	"github.com/weftmesh/weft/internal/promtext"
)

// WritePrometheus renders the istio_* metrics in Prometheus text format
// (version 0.0.4), series sorted by labels so scrapes are stable.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	pw := promtext.NewWriter(bw)
	var hs []*httpSeries
	m.http.each(func(s *httpSeries) { hs = append(hs, s) })
	sort.Slice(hs, func(i, j int) bool { return hs[i].labels < hs[j].labels })
	var ts []*tcpSeries
	m.tcp.each(func(s *tcpSeries) { ts = append(ts, s) })
	sort.Slice(ts, func(i, j int) bool { return ts[i].labels < ts[j].labels })

	if len(hs) > 0 {
		pw.Header("istio_requests_total", "counter", "")
		for _, s := range hs {
			pw.Uint("istio_requests_total", s.labels, s.requests.Load())
		}
		for _, h := range []struct {
			name string
			get  func(*httpSeries) *histogram
		}{
			{"istio_request_bytes", func(s *httpSeries) *histogram { return &s.reqBytes }},
			{"istio_request_duration_milliseconds", func(s *httpSeries) *histogram { return &s.duration }},
			{"istio_response_bytes", func(s *httpSeries) *histogram { return &s.rspBytes }},
		} {
			pw.Header(h.name, "histogram", "")
			for _, s := range hs {
				writeHistogram(pw, h.name, s.labels, h.get(s))
			}
		}
	}
	if len(ts) > 0 {
		for _, c := range []struct {
			name string
			get  func(*tcpSeries) uint64
		}{
			{"istio_tcp_connections_closed_total", func(s *tcpSeries) uint64 { return s.closed.Load() }},
			{"istio_tcp_connections_opened_total", func(s *tcpSeries) uint64 { return s.opened.Load() }},
			{"istio_tcp_received_bytes_total", func(s *tcpSeries) uint64 { return s.receivedBytes.Load() }},
			{"istio_tcp_sent_bytes_total", func(s *tcpSeries) uint64 { return s.sentBytes.Load() }},
		} {
			pw.Header(c.name, "counter", "")
			for _, s := range ts {
				pw.Uint(c.name, s.labels, c.get(s))
			}
		}
	}
	if pw.Err() != nil {
		return pw.Err()
	}
	return bw.Flush()
}

// withLe adds the bucket bound to a series' labels.
func withLe(labels, le string) string {
	if labels == "" {
		return `le="` + le + `"`
	}
	return labels + `,le="` + le + `"`
}

func writeHistogram(w *promtext.Writer, name, labels string, h *histogram) {
	var cum uint64
	for i, le := range bucketNames {
		cum += h.counts[i].Load()
		w.Uint(name+"_bucket", withLe(labels, le), cum)
	}
	cum += h.counts[len(bucketNames)].Load()
	w.Uint(name+"_bucket", withLe(labels, "+Inf"), cum)
	w.Uint(name+"_sum", labels, h.sum.Load())
	w.Uint(name+"_count", labels, cum)
}
