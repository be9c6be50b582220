package samples

import "net/http"

// propagated lists the request headers Istio's Bookinfo apps copy from an
// inbound request to the calls it causes: the request id, every tracing
// format Istio supports (B3 multi and single header, W3C, Datadog,
// Lightstep, SkyWalking, Cloud Trace, gRPC binary), and the identity headers
// that routing rules match on (end-user, user-agent, cookie, authorization).
// The proxy can only join spans and route by user if apps forward these.
var propagated = []string{
	"x-request-id",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
	"traceparent", "tracestate",
	"x-ot-span-context",
	"x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
	"x-cloud-trace-context", "grpc-trace-bin",
	"sw8",
	"end-user", "user-agent", "cookie", "authorization", "jwt",
}

// Propagate copies the propagated headers of src into dst (overwriting).
func Propagate(dst, src http.Header) {
	for _, k := range propagated {
		if v := src.Values(k); len(v) > 0 {
			dst[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
	}
}

// PropagatedHeaders returns the names Propagate copies, for documentation
// and tests.
func PropagatedHeaders() []string { return append([]string(nil), propagated...) }
