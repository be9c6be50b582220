package tasks

import (
	"os"
	"os/exec"
	"testing"

	"github.com/weftmesh/weft/internal/demo"
)

// TestCaptureMode runs the routing, shifting, fault and mutual TLS tasks again with
// every workload in its own network namespace and iptables capture: apps
// call http://reviews:9080 with no proxy settings. Needs root.
func TestCaptureMode(t *testing.T) {
	if captureMode {
		t.Skip("already in capture mode")
	}
	if err := demo.CaptureUnavailable(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestRequestRouting|TestTrafficShifting|TestFaultInjection|TestMutualTLSMigration|TestAuthenticationPolicy)$", "-test.v", "-test.timeout", "15m")
	cmd.Env = append(os.Environ(), "WEFT_E2E_CAPTURE=1", "WEFT_E2E_BIN="+binDir)
	out, err := cmd.CombinedOutput()
	t.Logf("capture-mode run:\n%s", out)
	if err != nil {
		t.Fatalf("capture-mode tasks failed: %v", err)
	}
}
