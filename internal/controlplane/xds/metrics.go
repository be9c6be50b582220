package xds

import (
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/promtext"
)

// Metrics are the ADS server's Prometheus metrics.
type Metrics struct {
	connected     atomic.Int64
	checkFailures atomic.Int64
	// identityMismatch counts streams refused because node metadata
	// claimed another identity than the verified one.
	identityMismatch atomic.Int64
	mu               sync.Mutex
	pushes           map[string]int64 // by short type
	nacks            map[string]int64
	convergence      *histogram
}

func newMetrics() *Metrics {
	return &Metrics{
		pushes:      map[string]int64{},
		nacks:       map[string]int64{},
		convergence: newHistogram([]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
	}
}

func (m *Metrics) push(typeURL string) {
	m.mu.Lock()
	m.pushes[ShortType(typeURL)]++
	m.mu.Unlock()
}

func (m *Metrics) nack(typeURL string) {
	m.mu.Lock()
	m.nacks[ShortType(typeURL)]++
	m.mu.Unlock()
}

// IdentityMismatches returns how many streams were refused for claiming
// another identity than the verified one.
func (m *Metrics) IdentityMismatches() int64 { return m.identityMismatch.Load() }

// Pushes returns how many responses of a type (CDS, EDS …) were sent.
func (m *Metrics) Pushes(short string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pushes[short]
}

// WriteTo writes the metrics in Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	pw := promtext.NewWriter(w)
	m.mu.Lock()
	writeCounter(pw, "weft_xds_pushes_total", "xDS responses sent, by type.", m.pushes)
	writeCounter(pw, "weft_xds_nacks_total", "xDS responses rejected by proxies, by type.", m.nacks)
	m.mu.Unlock()
	for _, g := range []struct {
		name, typ, help string
		v               int64
	}{
		{"weft_xds_connected_proxies", "gauge", "Proxies with at least one open xDS stream.", m.connected.Load()},
		{"weft_xds_check_failures_total", "counter", "Translations not published because the consistency check failed.", m.checkFailures.Load()},
		{"weft_xds_identity_mismatch_total", "counter", "xDS streams refused because the node metadata claimed another namespace or service account than the caller's verified identity.", m.identityMismatch.Load()},
	} {
		pw.Header(g.name, g.typ, g.help)
		pw.Int(g.name, "", g.v)
	}
	m.convergence.write(pw, "weft_xds_push_convergence_seconds", "Time from a config change to the proxy's ACK.")
	return pw.N(), pw.Err()
}

func writeCounter(w *promtext.Writer, name, help string, vals map[string]int64) {
	w.Header(name, "counter", help)
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.Int(name, promtext.Labels("type", k), vals[k])
	}
}

// histogram is a cumulative Prometheus histogram.
type histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64 // per bound, non-cumulative; last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

// Count returns how many observations were made.
func (h *histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *histogram) write(w *promtext.Writer, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.Header(name, "histogram", help)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		w.Uint(name+"_bucket", promtext.Labels("le", strconv.FormatFloat(b, 'g', -1, 64)), cum)
	}
	cum += h.counts[len(h.bounds)]
	w.Uint(name+"_bucket", `le="+Inf"`, cum)
	w.Float(name+"_sum", "", h.sum)
	w.Uint(name+"_count", "", h.n)
}
