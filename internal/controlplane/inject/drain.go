package inject

import (
	"slices"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
)

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

// proxyMetadataEnv is ProxyConfig.proxyMetadata (MeshConfig defaultConfig
// overlaid by the pod's proxy.istio.io/config) as the proxy's environment,
// sorted by name, as Istio's template renders it: how Istio users set
// agent options such as EXIT_ON_ZERO_ACTIVE_CONNECTIONS and
// MINIMUM_DRAIN_DURATION. Later entries win over the injector's own.
func proxyMetadataEnv(pc *meshv1alpha1.ProxyConfig) []corev1.EnvVar {
	md := pc.GetProxyMetadata()
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]corev1.EnvVar, 0, len(keys))
	for _, k := range keys {
		out = append(out, corev1.EnvVar{Name: k, Value: md[k]})
	}
	return out
}
