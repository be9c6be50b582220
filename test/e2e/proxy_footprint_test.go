package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestProxyBinaryFootprint builds weft-proxy, feeds it 1,000 EDS clusters
// and reports the binary size and the idle RSS once ready; then SIGTERM
// must drain and exit 0.
func TestProxyBinaryFootprint(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "weft-proxy")
	build := kit.GoBuild(bin, "github.com/weftmesh/weft/cmd/weft-proxy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	stripped := bin
	if !testing.Short() {
		stripped = bin + "-stripped"
		if out, err := kit.GoBuild(stripped, "github.com/weftmesh/weft/cmd/weft-proxy", "-ldflags=-s -w").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	var res meshtest.Resources
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("outbound|9080||svc%d.default.svc.cluster.local", i)
		res.Clusters = append(res.Clusters, meshtest.EDSCluster(name))
		res.Endpoints = append(res.Endpoints, meshtest.Endpoints(name, fmt.Sprintf("127.0.%d.%d:9080", 20+i/250, 1+i%250)))
	}
	res.Listeners = []types.Resource{meshtest.Listener("tcp", "127.0.0.1:0", meshtest.TCPProxyFilter("outbound|9080||svc0.default.svc.cluster.local"))}
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startFootprintProxy(t, bin, srv.Addr(), "bench")
	readyIn := time.Since(start)
	rss := proxyVMRSS(t, p.Cmd.Process.Pid)
	fi, _ := os.Stat(bin)
	fs, _ := os.Stat(stripped)
	t.Logf("weft-proxy binary %.1f MiB (stripped %.1f MiB); ready with 1,000 EDS clusters in %v; idle RSS %.1f MiB",
		float64(fi.Size())/(1<<20), float64(fs.Size())/(1<<20), readyIn.Round(time.Millisecond), float64(rss)/(1<<10))
	if rss > 300<<10 {
		t.Errorf("idle RSS %d KiB is out of line for 1,000 clusters", rss)
	}
	p.Stop(t, syscall.SIGTERM, 15*time.Second)
	if !p.Cmd.ProcessState.Success() {
		t.Fatalf("exit after SIGTERM: %v", p.Cmd.ProcessState)
	}
}

// startFootprintProxy runs bin as a sidecar of the xDS server at xds in
// namespace ns, every port ephemeral, and waits until it is ready.
func startFootprintProxy(t *testing.T, bin, xds, ns string) *kit.Proc {
	t.Helper()
	p := kit.Command{Path: bin, Args: []string{"sidecar", "--xds", xds, "--ip", "127.0.0.1", "--admin-port", "0", "--health-port", "0",
		"--stats-port", "0", "--drain-duration", "1s", "--name", "footprint"}, Env: []string{"WEFT_NAMESPACE=" + ns}}.Start(t)
	// The start-up log line names the bound ports.
	health := kit.LogField(p.WaitLine(t, "health=", time.Minute), "health")
	p.WaitReady(t, health, time.Minute)
	return p
}

// vmRSS reads the resident set size in KiB.
func proxyVMRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
