package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// TestControlPlaneScale measures how long a config change takes to reach
// (be ACKed by) every proxy: 200 services, 400 in-process xDS clients (less
// under -race). The times are reported, not asserted.
func TestControlPlaneScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	const services, proxies = cpScaleServices, cpScaleProxies
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: svc-%[1]d
spec:
  selector: {app: svc-%[1]d}
  ports:
  - {name: http, port: 8080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: svc-%[1]d-vm
spec:
  address: 198.18.%[2]d.%[3]d
  labels: {app: svc-%[1]d}
---
`, i, i/250, i%250+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{ConfigDir: dir, XDSAddress: "127.0.0.1:0", MonitoringAddress: "127.0.0.1:0", Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	clients := make([]*meshtest.XDSClient, proxies)
	for i := range clients {
		m := &node.Meta{Type: node.Sidecar, IP: fmt.Sprintf("127.0.%d.%d", 10+i/250, i%250+1), Name: fmt.Sprintf("app-%d", i),
			Namespace: "default", Labels: map[string]string{"app": fmt.Sprintf("svc-%d", i%services)},
			Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}, Capture: true}
		c, err := meshtest.DialXDS(s.XDSAddr(), m, meshtest.XDSClientOptions{Delta: i%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	waitAll := func(what string, cond func(*meshtest.XDSClient) bool) time.Duration {
		t.Helper()
		begin := time.Now()
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer wcancel()
		var wg sync.WaitGroup
		errs := make(chan error, len(clients))
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.WaitFor(wctx, cond); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return time.Since(begin)
	}
	waitAll("initial config", func(c *meshtest.XDSClient) bool {
		return len(c.Resources(resource.ClusterType)) >= services && len(c.Resources(resource.EndpointType)) >= services
	})
	t.Logf("%d proxies connected and synced with %d services in %v", proxies, services, time.Since(start))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use (control plane and the %d in-process clients): %d MiB", proxies, ms.HeapInuse>>20)
	// Let auto-registration pushes settle before measuring.
	settle := time.Now()
	for time.Since(settle) < 30*time.Second {
		st := s.XDS().Status()
		synced := 0
		for _, p := range st {
			if p.Types["EDS"].State == "SYNCED" && p.Types["CDS"].State == "SYNCED" {
				synced++
			}
		}
		if synced == proxies {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}

	measure := func(name, yaml string, typeURL string) {
		before := make([]string, len(clients))
		for i, c := range clients {
			before[i] = c.Version(typeURL)
		}
		idx := map[*meshtest.XDSClient]int{}
		for i, c := range clients {
			idx[c] = i
		}
		begin := time.Now()
		if _, err := s.Store().Apply(name, []byte(yaml), config.Options{}); err != nil {
			t.Fatal(err)
		}
		waitAll(name, func(c *meshtest.XDSClient) bool { return c.Version(typeURL) != before[idx[c]] })
		t.Logf("%s: all %d proxies ACKed the new %s %v after the apply", name, proxies, shortType(typeURL), time.Since(begin))
	}
	measure("endpoint change", `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: svc-0-vm
spec:
  address: 198.18.9.9
  labels: {app: svc-0}
`, resource.EndpointType)
	measure("route change", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-1
spec:
  hosts: [svc-1]
  http:
  - timeout: 3s
    route:
    - destination: {host: svc-1}
`, resource.RouteType)

	var metrics strings.Builder
	s.XDS().Metrics().WriteTo(&metrics)
	var lines []string
	for _, l := range strings.Split(metrics.String(), "\n") {
		if strings.HasPrefix(l, "weft_xds_push_convergence_seconds_") || strings.HasPrefix(l, "weft_xds_pushes_total") {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	t.Logf("metrics:\n%s", strings.Join(lines, "\n"))
}

func shortType(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}
