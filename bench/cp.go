package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// cpResult is the control-plane benchmark's outcome.
type cpResult struct {
	Services        int       `json:"services"`
	Proxies         int       `json:"proxies"`
	Connected       int       `json:"connected"`
	InitialSyncP50  float64   `json:"initial_sync_p50_ms"`
	InitialSyncP99  float64   `json:"initial_sync_p99_ms"`
	InitialSyncMax  float64   `json:"initial_sync_max_ms"`
	ChangeP50       []float64 `json:"change_to_ack_p50_ms"`
	ChangeP99       []float64 `json:"change_to_ack_p99_ms"`
	ChangeAll       []float64 `json:"change_to_all_acked_ms"`
	ChangeMissing   []int     `json:"change_not_acked"`
	RSSKB           int64     `json:"rss_kb"`
	PeakRSSKB       int64     `json:"peak_rss_kb"`
	CPUConnectSec   float64   `json:"cpu_seconds_connect"`
	CPUPerChangeSec []float64 `json:"cpu_seconds_per_change"`
	Error           string    `json:"error,omitempty"`
}

// benchControlPlane runs `weft control-plane` with services Services (each
// with an endpoint), connects proxies in-process xDS clients (state of the
// world, CDS/EDS/LDS/RDS, ACKing everything), then makes changes config
// changes (a new Service each) and times, per client, from the file's
// rename into the watched directory to the client's acceptance of a CDS
// version holding the new cluster.
func benchControlPlane(ctx context.Context, weft, dir string, services, proxies, changes int, timeout time.Duration) cpResult {
	r := cpResult{Services: services, Proxies: proxies}
	cp, err := startControlPlane(ctx, weft, dir, fmt.Sprintf("cp-%d", proxies), map[string]string{"services.yaml": servicesYAML("svc", services)})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cp.proc.stop()
	cpu0 := cp.proc.cpuSeconds()

	clients := make([]*meshtest.XDSClient, 0, proxies)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
		wg.Wait()
	}()
	start := time.Now()
	for i := 0; i < proxies; i++ {
		ip := net.IPv4(198, 18, byte(200+i/250), byte(1+i%250)).String()
		m := &node.Meta{Type: node.Sidecar, IP: ip, Name: fmt.Sprintf("sim-%04d", i), Namespace: "default",
			ServiceAccount: "sim", Labels: map[string]string{"app": "sim"}, AppAddress: ip, ProxyPort: proxyPort}
		c, err := meshtest.DialXDS(cp.xds, m, meshtest.XDSClientOptions{})
		if err != nil {
			r.Error = fmt.Sprintf("client %d: %v", i, err)
			return r
		}
		clients = append(clients, c)
	}
	synced := func(c *meshtest.XDSClient) bool {
		return c.Version(resource.ClusterType) != "" && c.Version(resource.ListenerType) != ""
	}
	times, missing := waitAll(ctx, clients, start, synced, timeout)
	r.Connected = proxies - missing
	r.InitialSyncP50, r.InitialSyncP99, r.InitialSyncMax = pct(times, 50), pct(times, 99), pct(times, 100)
	r.CPUConnectSec = cp.proc.cpuSeconds() - cpu0
	if missing > 0 {
		r.Error = fmt.Sprintf("%d of %d proxies never synced within %v", missing, proxies, timeout)
		r.RSSKB, r.PeakRSSKB = cp.proc.memKB("VmRSS"), cp.proc.memKB("VmHWM")
		return r
	}
	for k := 0; k < changes && ctx.Err() == nil; k++ {
		name := fmt.Sprintf("change-%d", k)
		cpuBefore := cp.proc.cpuSeconds()
		start := time.Now()
		if err := cp.write(name+".yaml", servicesYAML(name, 1)); err != nil {
			r.Error = err.Error()
			break
		}
		want := name + "-0000."
		has := func(c *meshtest.XDSClient) bool {
			for n := range c.Resources(resource.ClusterType) {
				if strings.Contains(n, want) {
					return true
				}
			}
			return false
		}
		times, missing := waitAll(ctx, clients, start, has, timeout)
		r.ChangeP50 = append(r.ChangeP50, pct(times, 50))
		r.ChangeP99 = append(r.ChangeP99, pct(times, 99))
		r.ChangeAll = append(r.ChangeAll, pct(times, 100))
		r.ChangeMissing = append(r.ChangeMissing, missing)
		r.CPUPerChangeSec = append(r.CPUPerChangeSec, cp.proc.cpuSeconds()-cpuBefore)
	}
	r.RSSKB, r.PeakRSSKB = cp.proc.memKB("VmRSS"), cp.proc.memKB("VmHWM")
	return r
}

// waitAll waits for cond on every client and returns each one's time since
// start (ms) and how many never got there.
func waitAll(ctx context.Context, clients []*meshtest.XDSClient, start time.Time, cond func(*meshtest.XDSClient) bool, timeout time.Duration) ([]float64, int) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	var times []float64
	missing := 0
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.WaitFor(ctx, cond)
			d := float64(time.Since(start).Microseconds()) / 1000
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missing++
				return
			}
			times = append(times, d)
		}()
	}
	wg.Wait()
	return times, missing
}

// pct is the p-th percentile (nearest rank) of xs; 0 when empty.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(p/100*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
