package inject

import (
	"encoding/json"
	"fmt"
	"strings"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// prober is one original probe, kept for the sidecar (ISTIO_KUBE_APP_PROBERS
// as Istio: path → the probe's handler and timeout).
type prober struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// rewriteProbes points the app containers' HTTP, TCP and gRPC probes at
// the sidecar's /app-health/<container>/{readyz,livez,startupz} on 15020,
// so the kubelet's plaintext probes still work under STRICT mTLS (Istio's
// rewriteAppHTTPProbers, on unless the annotation says false). It returns
// the originals as ISTIO_KUBE_APP_PROBERS ("" if none).
func rewriteProbes(pod *corev1.Pod, ann map[string]string) (string, error) {
	if v, ok := ann[annotation.SidecarRewriteAppHTTPProbers.Name]; ok && strings.EqualFold(v, "false") {
		return "", nil
	}
	probers := map[string]prober{}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		for _, p := range []struct {
			probe *corev1.Probe
			kind  string
		}{{c.ReadinessProbe, "readyz"}, {c.LivenessProbe, "livez"}, {c.StartupProbe, "startupz"}} {
			if p.probe == nil || p.probe.Exec != nil {
				continue
			}
			h := p.probe.ProbeHandler
			if h.HTTPGet != nil && h.HTTPGet.Port.Type == intstr.String {
				port, ok := namedPort(c, h.HTTPGet.Port.StrVal)
				if !ok {
					return "", fmt.Errorf("container %q: probe port %q is not a named port of the container", c.Name, h.HTTPGet.Port.StrVal)
				}
				h.HTTPGet = h.HTTPGet.DeepCopy()
				h.HTTPGet.Port = intstr.FromInt32(port)
			}
			if h.TCPSocket != nil && h.TCPSocket.Port.Type == intstr.String {
				port, ok := namedPort(c, h.TCPSocket.Port.StrVal)
				if !ok {
					return "", fmt.Errorf("container %q: probe port %q is not a named port of the container", c.Name, h.TCPSocket.Port.StrVal)
				}
				h.TCPSocket = &corev1.TCPSocketAction{Host: h.TCPSocket.Host, Port: intstr.FromInt32(port)}
			}
			// The API server's defaults, so that kube-inject (before
			// defaulting) and the webhook (after) write the same value.
			if h.HTTPGet != nil && h.HTTPGet.Scheme == "" {
				h.HTTPGet = h.HTTPGet.DeepCopy()
				h.HTTPGet.Scheme = corev1.URISchemeHTTP
			}
			timeout := p.probe.TimeoutSeconds
			if timeout == 0 {
				timeout = 1
			}
			path := "/app-health/" + c.Name + "/" + p.kind
			probers[path] = prober{HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket, GRPC: h.GRPC, TimeoutSeconds: timeout}
			p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP}}
		}
	}
	if len(probers) == 0 {
		return "", nil
	}
	b, err := json.Marshal(probers) // map keys are sorted: deterministic
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func namedPort(c *corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}
