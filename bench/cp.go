package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

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
	// Stopped says why fewer proxies than asked joined (the changes then
	// run with those that did).
	Stopped string `json:"stopped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// benchControlPlane runs `weft control-plane` with services Services (each
// with an endpoint), connects proxies simulated proxies (simProxy) in
// batches, then makes changes config changes (a new Service each) and
// times, per proxy, from the file's rename into the watched directory to
// the proxy's receipt of a CDS response holding the new cluster. To protect
// a shared machine it stops adding proxies once the control plane's RSS
// passes maxRSSKB.
//
// Phases (connecting, each change) end by deadline: each may take up to
// 90 s but leaves at least 5 s for every later phase.
func benchControlPlane(ctx context.Context, weft, dir string, services, proxies, changes int, deadline time.Time, maxRSSKB int64) cpResult {
	phaseTimeout := func(later int) time.Duration {
		return min(90*time.Second, max(5*time.Second, time.Until(deadline)-time.Duration(later)*5*time.Second))
	}
	r := cpResult{Services: services, Proxies: proxies}
	cp, err := startControlPlane(ctx, weft, dir, fmt.Sprintf("cp-%d", proxies), map[string]string{"services.yaml": servicesYAML("svc", services)})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cp.proc.stop()
	cpu0 := cp.proc.cpuSeconds()

	sims := make([]*simProxy, 0, proxies)
	defer func() {
		var wg sync.WaitGroup
		for _, s := range sims {
			wg.Add(1)
			go func() { defer wg.Done(); s.close() }()
		}
		wg.Wait()
	}()
	// Proxies join in batches; each batch must sync before the next
	// joins, so the RSS guard sees the cost of the proxies already in.
	timeout := phaseTimeout(changes)
	phase, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const batch = 100
	var times []float64
	missing := 0
	for i := 0; i < proxies && r.Error == ""; i += batch {
		if rss := cp.proc.memKB("VmRSS"); maxRSSKB > 0 && rss > maxRSSKB {
			r.Stopped = fmt.Sprintf("stopped adding proxies at %d: control-plane RSS %d MiB passed the %d MiB guard (-cp-max-rss)", i, rss/1024, maxRSSKB/1024)
			break
		}
		first := len(sims)
		start := time.Now()
		for j := i; j < min(i+batch, proxies); j++ {
			ip := net.IPv4(198, 18, byte(200+j/250), byte(1+j%250)).String()
			m := &node.Meta{Type: node.Sidecar, IP: ip, Name: fmt.Sprintf("sim-%04d", j), Namespace: "default",
				ServiceAccount: "sim", Labels: map[string]string{"app": "sim"}, AppAddress: ip, ProxyPort: proxyPort}
			s, err := dialSim(cp.xds, m)
			if err != nil {
				r.Error = fmt.Sprintf("proxy %d: %v", j, err)
				return r
			}
			sims = append(sims, s)
		}
		t, miss := waitAll(phase, sims[first:], start, (*simProxy).waitSynced)
		times, missing = append(times, t...), missing+miss
		if miss > 0 {
			r.Error = fmt.Sprintf("%d proxies of the batch from %d not synced within the phase timeout %v", miss, i, timeout)
		}
	}
	r.Connected = len(sims) - missing
	r.InitialSyncP50, r.InitialSyncP99, r.InitialSyncMax = pct(times, 50), pct(times, 99), pct(times, 100)
	r.CPUConnectSec = cp.proc.cpuSeconds() - cpu0
	r.RSSKB, r.PeakRSSKB = cp.proc.memKB("VmRSS"), cp.proc.memKB("VmHWM")
	if r.Error != "" {
		return r
	}
	for k := 0; k < changes && ctx.Err() == nil; k++ {
		name := fmt.Sprintf("change-%d", k)
		for _, s := range sims {
			s.expectCluster(name + "-0000.")
		}
		cpuBefore := cp.proc.cpuSeconds()
		if time.Until(deadline) < 5*time.Second {
			r.Error = fmt.Sprintf("time budget spent after %d of %d changes", k, changes)
			break
		}
		phase, cancel := context.WithTimeout(ctx, phaseTimeout(changes-k-1))
		start := time.Now()
		if err := cp.write(name+".yaml", servicesYAML(name, 1)); err != nil {
			cancel()
			r.Error = err.Error()
			break
		}
		times, missing := waitAll(phase, sims, start, (*simProxy).waitFound)
		cancel()
		r.ChangeP50 = append(r.ChangeP50, pct(times, 50))
		r.ChangeP99 = append(r.ChangeP99, pct(times, 99))
		r.ChangeAll = append(r.ChangeAll, pct(times, 100))
		r.ChangeMissing = append(r.ChangeMissing, missing)
		r.CPUPerChangeSec = append(r.CPUPerChangeSec, cp.proc.cpuSeconds()-cpuBefore)
	}
	r.RSSKB, r.PeakRSSKB = cp.proc.memKB("VmRSS"), cp.proc.memKB("VmHWM")
	return r
}

// waitAll waits for an event on every proxy and returns each one's time
// since start (ms) and how many never got there.
func waitAll(ctx context.Context, sims []*simProxy, start time.Time, wait func(*simProxy, context.Context) (time.Time, error)) ([]float64, int) {
	var mu sync.Mutex
	var times []float64
	missing := 0
	var wg sync.WaitGroup
	for _, s := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := wait(s, ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missing++
				return
			}
			times = append(times, float64(at.Sub(start).Microseconds())/1000)
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
