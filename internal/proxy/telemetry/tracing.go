package telemetry

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Trace propagation headers: W3C trace context and Zipkin B3 (multi and
// single header). A proxy continues whichever the request carries
// (traceparent first) and writes both W3C and B3 multi headers onward, so
// apps that forward either kind (Bookinfo forwards both) keep the trace.
const (
	hdrTraceparent = "Traceparent"
	hdrTracestate  = "Tracestate"
	hdrB3TraceID   = "X-B3-Traceid"
	hdrB3SpanID    = "X-B3-Spanid"
	hdrB3Parent    = "X-B3-Parentspanid"
	hdrB3Sampled   = "X-B3-Sampled"
	hdrB3Flags     = "X-B3-Flags"
	hdrB3Single    = "B3"
)

// traceContext is what arrives with a request.
type traceContext struct {
	traceID [16]byte
	spanID  [8]byte // the caller's span: our parent
	sampled bool
	decided bool // the caller made a sampling decision
	valid   bool
}

// extract reads the incoming trace context, if any.
func extract(h http.Header) traceContext {
	if v := first(h, hdrTraceparent); v != "" {
		return parseTraceparent(v)
	}
	if v := first(h, hdrB3TraceID); v != "" {
		var tc traceContext
		if !parseTraceID(v, &tc.traceID) || !parseHex(first(h, hdrB3SpanID), tc.spanID[:]) {
			return traceContext{}
		}
		tc.valid = true
		switch first(h, hdrB3Sampled) {
		case "1", "true":
			tc.sampled, tc.decided = true, true
		case "0", "false":
			tc.decided = true
		}
		if first(h, hdrB3Flags) == "1" {
			tc.sampled, tc.decided = true, true
		}
		return tc
	}
	if v := first(h, hdrB3Single); v != "" {
		// b3: {traceid}-{spanid}[-{sampled}[-{parent}]], or just "0"/"1"/"d".
		parts := strings.Split(v, "-")
		var tc traceContext
		if len(parts) < 2 || !parseTraceID(parts[0], &tc.traceID) || !parseHex(parts[1], tc.spanID[:]) {
			return traceContext{}
		}
		tc.valid = true
		if len(parts) > 2 {
			tc.decided = true
			tc.sampled = parts[2] == "1" || parts[2] == "d"
		}
		return tc
	}
	return traceContext{}
}

func first(h http.Header, k string) string {
	if v, ok := h[k]; ok && len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseTraceparent: version "00" "-" trace-id "-" parent-id "-" flags.
func parseTraceparent(v string) traceContext {
	var tc traceContext
	var ver [1]byte
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || !parseHex(v[:2], ver[:]) || ver[0] == 0xff ||
		(ver[0] == 0 && len(v) != 55) {
		return tc
	}
	if !parseHex(v[3:35], tc.traceID[:]) || !parseHex(v[36:52], tc.spanID[:]) {
		return tc
	}
	var flags [1]byte
	if !parseHex(v[53:55], flags[:]) || isZero(tc.traceID[:]) || isZero(tc.spanID[:]) {
		return tc
	}
	tc.valid, tc.decided, tc.sampled = true, true, flags[0]&1 == 1
	return tc
}

// parseTraceID accepts B3's 64- or 128-bit ids (64-bit ones are padded).
func parseTraceID(s string, id *[16]byte) bool {
	switch len(s) {
	case 32:
		return parseHex(s, id[:]) && !isZero(id[:])
	case 16:
		*id = [16]byte{}
		return parseHex(s, id[8:]) && !isZero(id[:])
	}
	return false
}

func parseHex(s string, dst []byte) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// span is one sampled hop, kept from Request to Complete.
type span struct {
	traceID    [16]byte
	spanID     [8]byte
	parentID   [8]byte // zero: a root span
	tracestate string
	start      time.Time
	server     bool
}

// tracer is one HCM's tracing config.
type tracer struct {
	exp     *exporter
	percent float64 // random sampling for requests without a decision
	server  bool    // inbound: SERVER spans; else CLIENT
	rand    func() float64
}

// compileTracing reads the HCM's tracing config; nil when absent.
func (t *Telemetry) compileTracing(cfg *hcmv3.HttpConnectionManager, server bool) (*tracer, error) {
	tc := cfg.GetTracing()
	if tc == nil {
		return nil, nil
	}
	const p = "http_connection_manager.tracing"
	if err := xdsfield.Check(tc, p, "random_sampling", "client_sampling", "overall_sampling", "provider",
		"custom_tags", "max_path_tag_length", "spawn_upstream_span", "verbose"); err != nil {
		return nil, err
	}
	tr := &tracer{percent: 100, server: server, rand: rand.Float64} // Envoy's default: 100%
	if rs := tc.GetRandomSampling(); rs != nil {
		tr.percent = rs.GetValue()
	}
	if tc.GetProvider() == nil {
		return nil, nil // Envoy: no provider, no spans; headers pass untouched
	}
	exp, err := t.exporterFor(tc.GetProvider(), p+".provider")
	if err != nil {
		return nil, err
	}
	tr.exp = exp
	return tr, nil
}

// start continues or begins the trace for a request and rewrites its
// propagation headers so the next hop is our child. It returns the span
// to finish when the request is sampled, else nil.
func (tr *tracer) start(r *http.Request, info *filter.Info) *span {
	h := r.Header
	in := extract(h)
	s := span{server: tr.server}
	if in.valid {
		s.traceID, s.parentID = in.traceID, in.spanID
		s.tracestate = first(h, hdrTracestate)
	} else {
		putRand(s.traceID[:8])
		putRand(s.traceID[8:])
	}
	putRand(s.spanID[:])
	sampled := in.sampled
	if !in.decided {
		sampled = tr.percent >= 100 || (tr.percent > 0 && tr.rand()*100 < tr.percent)
	}
	inject(h, &s, sampled)
	if !sampled {
		return nil
	}
	s.start = info.Start
	if s.start.IsZero() {
		s.start = time.Now()
	}
	return &s
}

func putRand(b []byte) {
	for {
		v := rand.Uint64()
		if v == 0 {
			continue
		}
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		return
	}
}

var sampledYes, sampledNo = [1]string{"1"}, [1]string{"0"}

// inject writes W3C and B3 headers naming s as the parent of what follows.
func inject(h http.Header, s *span, sampled bool) {
	var tp [55]byte
	copy(tp[:], "00-")
	hex.Encode(tp[3:35], s.traceID[:])
	tp[35] = '-'
	hex.Encode(tp[36:52], s.spanID[:])
	copy(tp[52:], "-00")
	if sampled {
		tp[54] = '1'
	}
	h[hdrTraceparent] = []string{string(tp[:])}
	h[hdrB3TraceID] = []string{hex.EncodeToString(s.traceID[:])}
	h[hdrB3SpanID] = []string{hex.EncodeToString(s.spanID[:])}
	if isZero(s.parentID[:]) {
		delete(h, hdrB3Parent)
	} else {
		h[hdrB3Parent] = []string{hex.EncodeToString(s.parentID[:])}
	}
	if sampled {
		h[hdrB3Sampled] = sampledYes[:1:1]
	} else {
		h[hdrB3Sampled] = sampledNo[:1:1]
	}
	delete(h, hdrB3Single)
	delete(h, hdrB3Flags)
}
