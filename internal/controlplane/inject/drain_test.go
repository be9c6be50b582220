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

// ProxyConfig.proxyMetadata becomes the proxy's environment, sorted, as in
// Istio's template: the way to ask for EXIT_ON_ZERO_ACTIVE_CONNECTIONS.
func TestProxyMetadataEnv(t *testing.T) {
	p := testPod()
	p.Annotations = map[string]string{"proxy.istio.io/config": "proxyMetadata:\n  MINIMUM_DRAIN_DURATION: 3s\n  EXIT_ON_ZERO_ACTIVE_CONNECTIONS: \"true\"\n"}
	out, err := Inject(testConfig(), p)
	if err != nil {
		t.Fatal(err)
	}
	env := out.Spec.InitContainers[1].Env
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	i := slices.Index(names, "EXIT_ON_ZERO_ACTIVE_CONNECTIONS")
	if i < 0 || i+1 >= len(env) || env[i].Value != "true" || env[i+1].Name != "MINIMUM_DRAIN_DURATION" || env[i+1].Value != "3s" {
		t.Errorf("proxy env %v: want EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true then MINIMUM_DRAIN_DURATION=3s", names)
	}
	out, err = Inject(testConfig(), testPod())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range out.Spec.InitContainers[1].Env {
		if e.Name == "EXIT_ON_ZERO_ACTIVE_CONNECTIONS" {
			t.Error("EXIT_ON_ZERO_ACTIVE_CONNECTIONS set without proxyMetadata")
		}
	}
}
