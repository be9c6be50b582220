package telemetry

import (
	"bufio"
	"io"
	"sort"
	"strconv"
)

// WritePrometheus renders the istio_* metrics in Prometheus text format
// (version 0.0.4), series sorted by labels so scrapes are stable.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var hs []*httpSeries
	m.http.each(func(s *httpSeries) { hs = append(hs, s) })
	sort.Slice(hs, func(i, j int) bool { return hs[i].labels < hs[j].labels })
	var ts []*tcpSeries
	m.tcp.each(func(s *tcpSeries) { ts = append(ts, s) })
	sort.Slice(ts, func(i, j int) bool { return ts[i].labels < ts[j].labels })

	if len(hs) > 0 {
		bw.WriteString("# TYPE istio_requests_total counter\n")
		for _, s := range hs {
			writeSample(bw, "istio_requests_total", s.labels, "", s.requests.Load())
		}
		for _, h := range []struct {
			name string
			get  func(*httpSeries) *histogram
		}{
			{"istio_request_bytes", func(s *httpSeries) *histogram { return &s.reqBytes }},
			{"istio_request_duration_milliseconds", func(s *httpSeries) *histogram { return &s.duration }},
			{"istio_response_bytes", func(s *httpSeries) *histogram { return &s.rspBytes }},
		} {
			bw.WriteString("# TYPE " + h.name + " histogram\n")
			for _, s := range hs {
				writeHistogram(bw, h.name, s.labels, h.get(s))
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
			bw.WriteString("# TYPE " + c.name + " counter\n")
			for _, s := range ts {
				writeSample(bw, c.name, s.labels, "", c.get(s))
			}
		}
	}
	return bw.Flush()
}

func writeSample(w *bufio.Writer, name, labels, extra string, v uint64) {
	w.WriteString(name)
	w.WriteByte('{')
	w.WriteString(labels)
	if extra != "" {
		if labels != "" {
			w.WriteByte(',')
		}
		w.WriteString(extra)
	}
	w.WriteString("} ")
	w.WriteString(strconv.FormatUint(v, 10))
	w.WriteByte('\n')
}

func writeHistogram(w *bufio.Writer, name, labels string, h *histogram) {
	var cum uint64
	for i, le := range bucketNames {
		cum += h.counts[i].Load()
		writeSample(w, name+"_bucket", labels, `le="`+le+`"`, cum)
	}
	cum += h.counts[len(bucketNames)].Load()
	writeSample(w, name+"_bucket", labels, `le="+Inf"`, cum)
	writeSample(w, name+"_sum", labels, "", h.sum.Load())
	writeSample(w, name+"_count", labels, "", cum)
}
