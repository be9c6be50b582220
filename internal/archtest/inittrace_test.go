package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// What package initialisation allocates stays in an idle sidecar's RSS
// (issue 17: a status-line table built with a 4 KiB writer per code left
// 2 MB of start-up garbage, 0.6 MiB of idle RSS). Weft's own packages may
// allocate little at init; the total, mostly protobuf type registration,
// has a bound with some room above today's 1.3 MB.
func TestProxyInitAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weft-proxy")
	}
	bin := filepath.Join(t.TempDir(), "weft-proxy")
	build := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-o", bin, "github.com/weftmesh/weft/cmd/weft-proxy")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.Command(bin, "--version")
	run.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("weft-proxy --version: %v\n%s", err, out)
	}
	const ownBound, totalBound = 128 << 10, 2 << 20
	total, seen := 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		// init <package> @0.5 ms, 0.01 ms clock, 1234 bytes, 5 allocs
		f := strings.Fields(line)
		if len(f) < 11 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		n, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q", line)
		}
		seen++
		total += n
		if strings.HasPrefix(f[1], "github.com/weftmesh/") && n > ownBound {
			t.Errorf("%s allocates %d bytes at init (bound %d)", f[1], n, ownBound)
		}
	}
	if seen == 0 {
		t.Fatalf("no inittrace lines in:\n%s", out)
	}
	if total > totalBound {
		t.Errorf("package initialisation allocates %d bytes (bound %d)", total, totalBound)
	}
	t.Logf("%d packages allocate %d bytes at init", seen, total)
}
