package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
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
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/weftmesh/weft/cmd/weft-proxy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	stripped := bin
	if !testing.Short() {
		stripped = bin + "-stripped"
		if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", stripped, "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput(); err != nil {
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
	cmd := exec.Command(bin, "sidecar", "--xds", srv.Addr(), "--ip", "127.0.0.1", "--admin-port", "0", "--health-port", "0",
		"--stats-port", "0", "--drain-duration", "1s", "--name", "footprint")
	cmd.Env = append(os.Environ(), "WEFT_NAMESPACE=bench")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	// The start-up log line names the bound ports.
	healthRe := regexp.MustCompile(`health=(\S+)`)
	lines := bufio.NewScanner(stderr)
	var health string
	for lines.Scan() {
		if m := healthRe.FindStringSubmatch(lines.Text()); m != nil {
			health = m[1]
			break
		}
	}
	if health == "" {
		t.Fatal("no start-up line with the health address")
	}
	go func() {
		for lines.Scan() {
		}
		exited <- cmd.Wait()
	}()
	start := time.Now()
	proxyWaitFor(t, "proxy ready with 1,000 clusters", func() bool {
		resp, err := http.Get("http://" + health + "/healthz/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	readyIn := time.Since(start)
	rss := proxyVMRSS(t, cmd.Process.Pid)
	fi, _ := os.Stat(bin)
	fs, _ := os.Stat(stripped)
	t.Logf("weft-proxy binary %.1f MiB (stripped %.1f MiB); ready with 1,000 EDS clusters in %v; idle RSS %.1f MiB",
		float64(fi.Size())/(1<<20), float64(fs.Size())/(1<<20), readyIn.Round(time.Millisecond), float64(rss)/(1<<10))
	if rss > 300<<10 {
		t.Errorf("idle RSS %d KiB is out of line for 1,000 clusters", rss)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
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
