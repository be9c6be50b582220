package inject

import (
	"slices"
	"testing"
)

// The native sidecar drains its inbound listeners from a preStop hook, as
// Istio's template does for native sidecars; a regular sidecar container
// has no hook (it drains on SIGTERM for terminationDrainDuration).
func TestNativeSidecarDrainsOnTermination(t *testing.T) {
	out, err := Inject(testConfig(), testPod())
	if err != nil {
		t.Fatal(err)
	}
	proxy := out.Spec.InitContainers[1]
	if proxy.Name != ProxyContainer {
		t.Fatalf("init container 1 is %q", proxy.Name)
	}
	want := []string{"weft-proxy", "request", "POST", "drain_listeners?inboundonly&graceful"}
	if proxy.Lifecycle == nil || proxy.Lifecycle.PreStop == nil || proxy.Lifecycle.PreStop.Exec == nil ||
		!slices.Equal(proxy.Lifecycle.PreStop.Exec.Command, want) {
		t.Errorf("native sidecar lifecycle %+v, want preStop exec %q", proxy.Lifecycle, want)
	}
	if proxy.Lifecycle != nil && (proxy.Lifecycle.PostStart != nil || proxy.Lifecycle.PreStop.HTTPGet != nil) {
		t.Errorf("native sidecar lifecycle %+v: only the preStop exec", proxy.Lifecycle)
	}
	// The app's own hooks are not the sidecar's.
	for _, c := range out.Spec.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			t.Errorf("app container %s got a preStop hook", c.Name)
		}
	}

	c := testConfig()
	c.RegularContainer = true
	out, err = Inject(c, testPod())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range out.Spec.Containers {
		if c.Name == ProxyContainer && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			t.Errorf("regular sidecar container got a preStop hook: %+v", c.Lifecycle.PreStop)
		}
	}
}
