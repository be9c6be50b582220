package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// Issue 18 acceptance on a real sidecar process: 10,000 requests with a
// malformed chunked body (the inputs, half of the clients hanging
// up without reading) leave weft-proxy's descriptors and RSS at their
// baseline within 5 s, and its listener, health and admin ports answer
// throughout. Uses 127.0.68.0/24.
func TestMalformedChunkFloodRealSidecar(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if testing.Short() {
		t.Skip("10,000 requests against a real proxy process; not in -short")
	}
	var backendConns, backendReqs atomic.Int64
	bln, err := net.Listen("tcp", "127.0.68.2:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backendReqs.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			backendConns.Add(1)
		}
	}}
	go backend.Serve(bln)
	defer backend.Close()

	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	const listenAddr = "127.0.68.1:18080"
	if err := srv.Set(meshtest.Resources{
		Listeners: []types.Resource{meshtest.Listener("in", listenAddr, meshtest.HCMFilter("in"))},
		Routes:    []types.Resource{meshtest.RouteConfig("in", "app")},
		Clusters:  []types.Resource{meshtest.StaticCluster("app", bln.Addr().String())},
	}); err != nil {
		t.Fatal(err)
	}
	pid, health, admin := startFloodProxy(t, srv.Addr())
	get := func(url string) error {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %d", url, resp.StatusCode)
		}
		return nil
	}
	meshtest.Eventually(t, "listener serving", 20*time.Second, func() error { return get("http://" + listenAddr + "/") })
	// Warm up the pools and buffers a real load would, then take the baseline.
	for i := 0; i < 200; i++ {
		if err := get("http://" + listenAddr + "/"); err != nil {
			t.Fatal(err)
		}
	}
	baseFDs, baseRSS, baseAnon := procFDs(t, pid), proxyVMRSS(t, pid), procStatusKB(t, pid, "RssAnon")

	// Probes: the app listener, readiness and admin must answer throughout.
	stop := make(chan struct{})
	var probeFail atomic.Int64
	var probeErr atomic.Value
	var probes sync.WaitGroup
	probes.Add(1)
	go func() {
		defer probes.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, u := range []string{"http://" + listenAddr + "/", "http://" + health + "/healthz/ready", "http://" + admin + "/ready"} {
				if err := get(u); err != nil {
					probeFail.Add(1)
					probeErr.Store(err.Error())
				}
			}
		}
	}()

	bodies := []string{"0x5\r\nhello\r\n0\r\n\r\n", " 5\r\nhello\r\n0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n",
		"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", "5\r\nhello0\r\n\r\n", "5\nhello\n0\n\n"}
	const n = 10000
	var sent, got400, other atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	start := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, err := net.DialTimeout("tcp", listenAddr, 5*time.Second)
				if err != nil {
					other.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s", bodies[i%len(bodies)])
				sent.Add(1)
				if i%2 == 1 { // hang up without reading
					c.Close()
					continue
				}
				line, _ := bufio.NewReader(c).ReadString('\n')
				if strings.HasPrefix(line, "HTTP/1.1 400") {
					got400.Add(1)
				} else {
					other.Add(1)
				}
				c.Close()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	flood := time.Since(start)
	peakFDs, peakRSS, peakAnon := procFDs(t, pid), proxyVMRSS(t, pid), procStatusKB(t, pid, "RssAnon")

	// Back to baseline within 5 s: descriptors (a few more for pooled
	// upstream connections) and private memory (RssAnon, within 5 MiB: what
	// pools and stacks keep). VmRSS also counts the binary's own pages the
	// flood's code paths touched (file-backed, shared, evictable): reported.
	settle := time.Now()
	var fds int
	var rss, anon int64
	deadline := settle.Add(5 * time.Second)
	for {
		fds, rss, anon = procFDs(t, pid), proxyVMRSS(t, pid), procStatusKB(t, pid, "RssAnon")
		if fds <= baseFDs+4 && anon <= baseAnon+5<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("5 s after the flood: %d descriptors (baseline %d), private memory %d KiB (baseline %d KiB)", fds, baseFDs, anon, baseAnon)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	probes.Wait()
	t.Logf("10,000 malformed-chunk requests in %v (%d answered 400 of %d read; %d other): proxy fds %d -> %d right after -> %d after %v; RSS %.1f -> %.1f -> %.1f MiB (private %.1f -> %.1f -> %.1f MiB); backend saw %d connections, %d requests",
		flood.Round(time.Millisecond), got400.Load(), n/2, other.Load(), baseFDs, peakFDs, fds, time.Since(settle).Round(10*time.Millisecond),
		float64(baseRSS)/1024, float64(peakRSS)/1024, float64(rss)/1024, float64(baseAnon)/1024, float64(peakAnon)/1024, float64(anon)/1024,
		backendConns.Load(), backendReqs.Load())
	if got400.Load() != n/2 {
		t.Errorf("%d of %d read responses were 400 (others: %d)", got400.Load(), n/2, other.Load())
	}
	if f := probeFail.Load(); f > 0 {
		t.Errorf("%d probe failures during the flood (last: %v)", f, probeErr.Load())
	}
}

// startFloodProxy runs bin/weft-proxy (built for the test) against xds and
// returns its pid and the health and admin addresses it bound.
func startFloodProxy(t *testing.T, xds string) (pid int, health, admin string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weft-proxy")
	if out, err := kit.GoBuild(bin, "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "sidecar", "--xds", xds, "--ip", "127.0.68.1", "--admin-port", "0", "--health-port", "0",
		"--stats-port", "0", "--drain-duration", "1s", "--name", "flood")
	cmd.Env = append(os.Environ(), "WEFT_NAMESPACE=flood")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	healthRe, adminRe := regexp.MustCompile(`health=(\S+)`), regexp.MustCompile(`admin=(\S+)`)
	lines := bufio.NewScanner(stderr)
	for lines.Scan() && (health == "" || admin == "") {
		if m := healthRe.FindStringSubmatch(lines.Text()); m != nil {
			health = m[1]
		}
		if m := adminRe.FindStringSubmatch(lines.Text()); m != nil {
			admin = m[1]
		}
	}
	if health == "" || admin == "" {
		t.Fatalf("no start-up line with the health and admin addresses")
	}
	go func() {
		for lines.Scan() {
		}
	}()
	return cmd.Process.Pid, health, admin
}

// procFDs counts a process's open descriptors.
func procFDs(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// procStatusKB reads one "Name: N kB" line of /proc/<pid>/status.
func procStatusKB(t *testing.T, pid int, name string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, name+":"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}
