// Package telemetry is weft-proxy's observability: Istio's standard
// metrics (istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes and the istio_tcp_* counters)
// with Istio's labels, Envoy access logs (file sink, TEXT and JSON, Envoy's
// default format), and the peer metadata exchange that lets both ends of a
// hop label a request with the other side's workload.
//
// # Metadata exchange
//
// It follows Istio's HTTP metadata exchange so Weft and Istio sidecars
// understand each other:
//
//   - x-envoy-peer-metadata-id: the sender's node id
//     (sidecar~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local);
//   - x-envoy-peer-metadata: base64 (standard alphabet) of a serialized
//     google.protobuf.Struct with the sender's node metadata: NAME,
//     NAMESPACE, WORKLOAD_NAME, LABELS (app, version, canonical labels),
//     SERVICE_ACCOUNT, CLUSTER_ID, INSTANCE_IPS, ISTIO_VERSION.
//
// A client-side proxy (reporter "source": outbound listeners, gateways)
// sets both headers on the request it forwards, replacing any the app
// sent, and reads then removes the server's pair from the response. A
// server-side proxy (reporter "destination": filter chains named
// inbound*, or the virtualInbound listener) reads then removes the
// client's pair from the request and adds its own to the response. A
// missing or undecodable header means the peer is "unknown". Decoded
// peers are cached by header value, so a steady peer costs one map lookup.
// TCP has no headers: its peer identity will come from the mTLS peer
// certificate once mTLS lands; until then TCP peers are "unknown". Open
// TCP connections report their bytes every TCPReportInterval (Istio's
// tcpReportingDuration) and at close.
//
// # Hot path
//
// A request resolves its metric series through a copy-on-write map keyed
// by a comparable tuple (reporter, peer, cluster, authority when it names
// the service, code, flags, protocol, grpc status): a lock-free lookup
// with no allocation; only a new tuple takes a mutex and renders labels.
// Access log lines are queued to a writer goroutine through a bounded
// channel that it drains every second or when half full; when the sink is
// slow, lines are dropped and counted (access_log.<path>.dropped_lines in
// /stats, weft_access_log_dropped_lines in Prometheus), never waited for.
package telemetry
