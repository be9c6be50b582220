package node

import (
	"strings"
	"testing"
)

// checkPreStopDrain reads a leaving pod's sidecar log: its preStop hook
// (`weft-proxy request POST drain_listeners?inboundonly&graceful`, Istio's
// native-sidecar drain) must have started the inbound drain, and the
// SIGTERM after the app's exit stopped it without a second drain period.
func checkPreStopDrain(t *testing.T, pod, log string) {
	t.Helper()
	var drain, stop string
	for _, line := range strings.Split(log, "\n") {
		switch {
		case drain == "" && strings.Contains(line, `msg="draining listeners"`) && strings.Contains(line, "inboundonly=true"):
			drain = line
		case stop == "" && strings.Contains(line, "drained since drain_listeners"):
			stop = line
		}
	}
	if drain == "" {
		t.Errorf("%s: its sidecar never started the inbound drain (no preStop drain_listeners in its log)", pod)
	}
	if stop == "" {
		t.Errorf("%s: its sidecar did not stop as drained by its preStop hook", pod)
	}
	t.Logf("%s sidecar: %s", pod, drain)
	t.Logf("%s sidecar: %s", pod, stop)
}
