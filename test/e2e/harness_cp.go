package e2e

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/test/e2e/kit"
)

// controlPlane is a running `weft control-plane` (a real process) on
// ephemeral ports, with the weft CLI pointed at it.
type controlPlane struct {
	*kit.Proc
	XDS, Monitoring string
	Weft            kit.CLI
}

// cpStart runs the control plane on dir; it learns the ports from the
// "control plane serving" log line.
func cpStart(t *testing.T, dir string, extra ...string) *controlPlane {
	t.Helper()
	bin := kit.SharedBinary(t, "weft")
	args := append([]string{"control-plane", "--config-dir", dir, "--xds-address", "127.0.0.1:0", "--secure-address", "127.0.0.1:0", "--monitoring-address", "127.0.0.1:0"}, extra...)
	p := kit.Command{Name: "control plane", Path: bin, Args: args, Graceful: true}.Start(t)
	line := p.WaitLine(t, "control plane serving", 20*time.Second)
	cp := &controlPlane{Proc: p, XDS: kit.LogField(line, "xds"), Monitoring: kit.LogField(line, "monitoring")}
	cp.Weft = kit.CLI{Bin: bin, ControlPlane: cp.Monitoring}
	return cp
}
