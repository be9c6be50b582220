package inject

import corev1 "k8s.io/api/core/v1"

// DrainCommand is the native sidecar's preStop hook: a graceful drain of
// the proxy's inbound listeners through its admin port (loopback only),
// Envoy's drain_listeners?inboundonly&graceful, which Istio's template
// reaches with `pilot-agent request POST drain`.
var DrainCommand = []string{"weft-proxy", "request", "POST", "drain_listeners?inboundonly&graceful"}

// drainOnTermination gives the native sidecar Istio's preStop drain. The
// kubelet runs every container's preStop hook when the pod starts
// terminating, but stops a native sidecar only after the app containers
// have exited. So inbound connections start draining (Connection: close,
// HTTP/2 GOAWAY, inbound listeners still serving) while the app shuts
// down, and clients holding pooled or long-lived connections move to other
// endpoints; outbound traffic is untouched, so the app can still call out.
// The SIGTERM that follows stops the proxy at once, as Istio's agent does
// after a drain. A regular sidecar container gets no hook: it receives
// SIGTERM with the app and drains for terminationDrainDuration.
func drainOnTermination(proxy *corev1.Container) {
	if proxy.Lifecycle == nil {
		proxy.Lifecycle = &corev1.Lifecycle{}
	}
	proxy.Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: append([]string(nil), DrainCommand...)}}
}
