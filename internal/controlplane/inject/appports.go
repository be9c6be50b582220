package inject

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// WaitForAppPortsAnnotation set to "false" on a pod leaves its app
// containers without the postStart hook below.
const WaitForAppPortsAnnotation = "weft.io/wait-for-app-ports"

// appPortsPath is the sidecar's postStart endpoint on the status port
// (internal/proxy/appprobe.PortsPath).
const appPortsPath = "/app-ports/"

// waitForAppPorts gives each app container that has TCP ports but no
// readiness probe and no postStart hook of its own a postStart HTTP hook
// on the sidecar's status port, answered once those ports listen
// connections (bounded; always 200). The kubelet marks a container Running,
// and so a probe-less container ready, only after its postStart hook: the
// pod does not become Ready, and no client sidecar is sent its endpoint,
// before the app listens. Without it a rolling restart lost requests to the
// new pod for up to a second (its sidecar answered 503 UF). Only with the
// native sidecar, which the kubelet starts before the app containers (a
// regular sidecar container may start after the hook runs).
func waitForAppPorts(pod *corev1.Pod, ann map[string]string) {
	if strings.EqualFold(ann[WaitForAppPortsAnnotation], "false") {
		return
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if c.ReadinessProbe != nil || (c.Lifecycle != nil && c.Lifecycle.PostStart != nil) {
			continue
		}
		var ports []string
		for _, p := range c.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				ports = append(ports, strconv.Itoa(int(p.ContainerPort)))
			}
		}
		if len(ports) == 0 {
			continue
		}
		if c.Lifecycle == nil {
			c.Lifecycle = &corev1.Lifecycle{}
		}
		c.Lifecycle.PostStart = &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: appPortsPath + strings.Join(ports, ","), Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP,
		}}
	}
}
