package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// A real weft-proxy under many idle clients (issue 18 item 9), on
// h1perf's loopback block 127.0.66.x: the sidecar listens on 127.0.66.2,
// its backend on 127.0.66.1. (The malformed-chunk flood against a real
// sidecar is TestMalformedChunkFloodRealSidecar.)

const abuseProxyIP, abuseBackendIP = "127.0.66.2", "127.0.66.1"

// abuseProxy is a running weft-proxy with one HTTP listener routing to a
// backend.
type abuseProxy struct {
	cmd    *exec.Cmd
	listen string // the HTTP listener
	health string
	admin  string
}

// startAbuseProxy builds weft-proxy (or takes WEFT_PROXY_BIN, to measure
// another build) and starts it with an HTTP listener to backend.
func startAbuseProxy(t *testing.T, backend string) *abuseProxy {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin := os.Getenv("WEFT_PROXY_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "weft-proxy")
		if out, err := kit.GoBuild(bin, "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	port := abuseFreePort(t)
	listen := net.JoinHostPort(abuseProxyIP, strconv.Itoa(port))
	res := meshtest.Resources{
		Listeners: []types.Resource{meshtest.Listener("http", listen, meshtest.HCMFilter("r"))},
		Routes:    []types.Resource{meshtest.RouteConfig("r", "be")},
		Clusters:  []types.Resource{meshtest.StaticCluster("be", backend)},
	}
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	cmd, addrs := startProxyProcess(t, bin, "--xds", srv.Addr(), "--ip", abuseProxyIP, "--merged-port", "0", "--name", "abuse")
	p := &abuseProxy{cmd: cmd, listen: listen, health: addrs["health"], admin: addrs["admin"]}
	if p.health == "" || p.admin == "" {
		t.Fatalf("no health or admin address in the start-up line: %v", addrs)
	}
	meshtest.WaitFor(t, "the sidecar routes to its backend", func() bool {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// startProxyProcess starts `bin sidecar` with the admin, health and stats
// ports on 0 and a 1 s drain, plus args, in the e2e namespace; it returns
// once the start-up line names the bound addresses ("admin", "health",
// "stats"), and kills the process when the test ends.
func startProxyProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, map[string]string) {
	t.Helper()
	args = append([]string{"sidecar", "--admin-port", "0", "--health-port", "0", "--stats-port", "0", "--drain-duration", "1s"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "WEFT_NAMESPACE=e2e")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addrRe := regexp.MustCompile(`\b(admin|health|stats)=(\S+)`)
	lines := bufio.NewScanner(stderr)
	addrs := map[string]string{}
	for len(addrs) == 0 && lines.Scan() {
		if strings.Contains(lines.Text(), "health=") {
			for _, m := range addrRe.FindAllStringSubmatch(lines.Text(), -1) {
				addrs[m[1]] = m[2]
			}
		}
	}
	if len(addrs) == 0 {
		t.Fatal("weft-proxy: no start-up line with its addresses")
	}
	go func() {
		for lines.Scan() {
		}
	}()
	return cmd, addrs
}

func abuseFreePort(t *testing.T) int {
	l, err := net.Listen("tcp", abuseProxyIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func abuseBackend(t *testing.T) string {
	l, err := net.Listen("tcp", abuseBackendIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

// privateKB is the proxy's private memory (RssAnon): VmRSS also counts the
// binary's pages, which memtrim unmaps when it trims (0c039b4), so their
// drop would pass for connections costing less.
func (p *abuseProxy) privateKB(t *testing.T) int64 {
	return procStatusKB(t, p.cmd.Process.Pid, "RssAnon")
}

// Issue 18 item 9: the RSS a real sidecar spends per idle keep-alive
// connection, 5,000 of them, each after one request (the issue measured
// 35 KB on the ingress; its target is 4 KB).
func TestSidecarIdleConnectionRSS(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 1000
	}
	p := startAbuseProxy(t, abuseBackend(t))
	rss0 := p.privateKB(t)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", p.listen)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
	}
	peak := p.privateKB(t)
	// Idle connections park without a goroutine after 2 s (internal/proxy/
	// park), and the proxy gives what the requests used back to the OS
	// once quiet (memtrim); take the lowest RSS until it is under the
	// issue's target or 40 s passed.
	// Measured: 3.4-4.0 KB (5.1-5.7 KB with a 2 KiB goroutine per idle
	// connection, 12.2 KB on the serving goroutine).
	const target = 4096
	low := peak
	end := time.Now().Add(40 * time.Second)
	for time.Now().Before(end) && float64(low-rss0)*1024/float64(n) > target {
		low = min(low, p.privateKB(t))
		time.Sleep(500 * time.Millisecond)
	}
	// The connections still work.
	for _, c := range []net.Conn{conns[0], conns[n-1]} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("an idle connection no longer serves: %v", err)
		}
		resp.Body.Close()
	}
	per := float64(low-rss0) * 1024 / float64(n)
	t.Logf("%d idle keep-alive connections: private memory (RssAnon) %.1f -> %.1f (after the requests) -> %.1f MiB idle: %.0f B per connection",
		n, float64(rss0)/1024, float64(peak)/1024, float64(low)/1024, per)
	if per > target {
		t.Errorf("an idle connection costs %.0f B of private memory, want <= %d", per, target)
	}
}
