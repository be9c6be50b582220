package bootstrap

import (
	"io"
	"strings"
	"testing"
	"time"
)

// Istio's agent options, from the environment the injector renders from
// proxyMetadata, or from flags.
func TestExitOnZeroActiveFlags(t *testing.T) {
	c, err := Parse("sidecar", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExitOnZeroActive || c.MinDrainDuration != 5*time.Second {
		t.Errorf("defaults: exit on zero %v, minimum drain %v; want false, 5s", c.ExitOnZeroActive, c.MinDrainDuration)
	}
	env := map[string]string{"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "MINIMUM_DRAIN_DURATION": "2s"}
	c, err = Parse("sidecar", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExitOnZeroActive || c.MinDrainDuration != 2*time.Second {
		t.Errorf("from Istio's env: exit on zero %v, minimum drain %v", c.ExitOnZeroActive, c.MinDrainDuration)
	}
	_, err = Parse("sidecar", []string{"--minimum-drain-duration", "soon"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--minimum-drain-duration") {
		t.Errorf("bad duration: %v", err)
	}
}
