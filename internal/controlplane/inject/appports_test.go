package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// An app container without a readiness probe of its own gets the postStart
// hook that holds it (and so the pod's readiness) until its TCP ports
// listen; one with a probe, a hook of its own, only UDP ports or the
// opt-out annotation does not, and neither does a regular-container
// sidecar (it may start after the hook runs).
func TestWaitForAppPorts(t *testing.T) {
	pod := testPod()
	pod.Spec.Containers[0].ReadinessProbe = nil
	pod.Spec.Containers = append(pod.Spec.Containers,
		corev1.Container{Name: "probed", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}}},
		corev1.Container{Name: "hooked", Ports: []corev1.ContainerPort{{ContainerPort: 8081}}, Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}},
		corev1.Container{Name: "udp", Ports: []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}},
		corev1.Container{Name: "two", Ports: []corev1.ContainerPort{{ContainerPort: 7000, Protocol: corev1.ProtocolTCP}, {ContainerPort: 7001, Protocol: corev1.ProtocolUDP}, {ContainerPort: 7002}}},
	)
	out, err := Inject(testConfig(), pod)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"reviews": "/app-ports/9080", "two": "/app-ports/7000,7002"}
	for _, c := range out.Spec.Containers {
		var got string
		if c.Lifecycle != nil && c.Lifecycle.PostStart != nil && c.Lifecycle.PostStart.HTTPGet != nil {
			h := c.Lifecycle.PostStart.HTTPGet
			if h.Port.IntValue() != StatusPort {
				t.Errorf("%s: hook on port %v", c.Name, h.Port.String())
			}
			got = h.Path
		}
		if got != want[c.Name] {
			t.Errorf("%s: postStart %q, want %q", c.Name, got, want[c.Name])
		}
	}
	if out.Spec.Containers[2].Lifecycle.PostStart.Exec == nil {
		t.Error("a container's own postStart hook was replaced")
	}

	pod.Annotations = map[string]string{WaitForAppPortsAnnotation: "false"}
	out, err = Inject(testConfig(), pod)
	if err != nil {
		t.Fatal(err)
	}
	if l := out.Spec.Containers[0].Lifecycle; l != nil && l.PostStart != nil {
		t.Errorf("opted out, still hooked: %+v", l.PostStart)
	}

	pod.Annotations = nil
	regular := testConfig()
	regular.RegularContainer = true
	out, err = Inject(regular, pod)
	if err != nil {
		t.Fatal(err)
	}
	if l := out.Spec.Containers[0].Lifecycle; l != nil && l.PostStart != nil {
		t.Errorf("regular-container sidecar, still hooked: %+v", l.PostStart)
	}
}
