package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/controlplane/apiauth"
	"github.com/weftmesh/weft/internal/node"
)

// cpResult is the control-plane benchmark's outcome.
type cpResult struct {
	// Source is where the config comes from: "dir" (a watched directory)
	// or "kube" (a kube-apiserver: Services and EndpointSlices).
	Source string `json:"source"`
	// XDS is the protocol variant the simulated proxies speak: "sotw"
	// (state of the world) or "delta" (incremental, as weft-proxy).
	XDS            string    `json:"xds"`
	Services       int       `json:"services"`
	Proxies        int       `json:"proxies"`
	Connected      int       `json:"connected"`
	InitialSyncP50 float64   `json:"initial_sync_p50_ms"`
	InitialSyncP99 float64   `json:"initial_sync_p99_ms"`
	InitialSyncMax float64   `json:"initial_sync_max_ms"`
	ChangeKind     []string  `json:"change_kind"` // per change: cluster, route or endpoint
	ChangeP50      []float64 `json:"change_to_ack_p50_ms"`
	ChangeP99      []float64 `json:"change_to_ack_p99_ms"`
	ChangeAll      []float64 `json:"change_to_all_acked_ms"`
	ChangeMissing  []int     `json:"change_not_acked"`
	RSSKB          int64     `json:"rss_kb"`
	PeakRSSKB      int64     `json:"peak_rss_kb"`
	// HeapLiveMB is the live heap after the last GC (gctrace), and the
	// largest seen during the run.
	HeapLiveMB      float64   `json:"heap_live_mb"`
	HeapLivePeakMB  float64   `json:"heap_live_peak_mb"`
	CPUConnectSec   float64   `json:"cpu_seconds_connect"`
	CPUPerChangeSec []float64 `json:"cpu_seconds_per_change"`
	// HarnessCPUPerChangeSec is the harness process's CPU (the simulated
	// proxies receiving, scanning and ACKing) during each change: it
	// shares the cores with the control plane.
	HarnessCPUPerChangeSec []float64 `json:"harness_cpu_seconds_per_change"`
	// Stopped says why fewer proxies than asked joined (the changes then
	// run with those that did).
	Stopped string `json:"stopped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// benchControlPlane runs `weft control-plane` on source (see startCPRun)
// with services Services (each with an endpoint), connects proxies
// simulated proxies (simProxy) in batches, then makes changes rounds of
// config changes, one of each kind (cpChange), and times, per proxy, from
// the change (the file's rename into the watched directory, or the API
// server call) to the proxy's receipt of a response showing the change. To protect a shared machine it stops adding proxies once the
// control plane's RSS passes maxRSSKB. With profileDir it keeps the
// control plane's profiles of the changes there (cpProfiles).
//
// Phases (connecting, each change) end by deadline: each may take up to
// 90 s but leaves at least 5 s for every later phase.
func benchControlPlane(ctx context.Context, source, xds, weft, dir string, services, proxies, changes int, deadline time.Time, maxRSSKB int64, profileDir string) (r cpResult) {
	phaseTimeout := func(later int) time.Duration {
		return min(90*time.Second, max(5*time.Second, time.Until(deadline)-time.Duration(later)*5*time.Second))
	}
	r = cpResult{Source: source, XDS: xds, Services: services, Proxies: proxies}
	cp, err := startCPRun(ctx, source, weft, dir, fmt.Sprintf("cp-%s-%s-%d", source, xds, proxies), services)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cp.close()
	defer func() { r.HeapLiveMB, r.HeapLivePeakMB = heapLiveMB(cp.proc.log) }()
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
			s, err := dialSim(cp.xds, m, xds == xdsDelta)
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
	var profiled chan error
	if profileDir != "" {
		profiled = make(chan error, 1)
		go func() {
			profiled <- cp.profile(ctx, "profile?seconds=30", filepath.Join(profileDir, fmt.Sprintf("cp-%s-%s-%d-cpu.pprof", source, xds, proxies)))
		}()
		// The harness's own profile over the same changes: the simulated
		// proxies share the cores with the control plane.
		stop, err := startSelfProfile(filepath.Join(profileDir, fmt.Sprintf("cp-%s-%s-%d-harness-cpu.pprof", source, xds, proxies)))
		if err != nil {
			r.Error = "profiles: " + err.Error()
			return r
		}
		defer stop()
	}
	for k := 0; k < changes*len(changeKinds) && ctx.Err() == nil; k++ {
		kind, round := changeKinds[k%len(changeKinds)], k/len(changeKinds)
		_, _, typeURL, text := cpChange(kind, round, services)
		types := []string{typeURL}
		if kind == "cluster" {
			// A new Service is usable once its cluster, its assignment and
			// the route to it have arrived (the push sends them in that order).
			types = []string{resource.ClusterType, resource.EndpointType, resource.RouteType}
		}
		for _, s := range sims {
			s.expectIn(types, text)
		}
		cpuBefore, selfBefore := cp.proc.cpuSeconds(), selfCPUSeconds()
		if time.Until(deadline) < 5*time.Second {
			r.Error = fmt.Sprintf("time budget spent after %d of %d changes", k, changes*len(changeKinds))
			break
		}
		phase, cancel := context.WithTimeout(ctx, phaseTimeout(changes*len(changeKinds)-k-1))
		start := time.Now()
		if err := cp.apply(phase, kind, round); err != nil {
			cancel()
			r.Error = err.Error()
			break
		}
		times, missing := waitAll(phase, sims, start, (*simProxy).waitFound)
		cancel()
		r.ChangeKind = append(r.ChangeKind, kind)
		r.ChangeP50 = append(r.ChangeP50, pct(times, 50))
		r.ChangeP99 = append(r.ChangeP99, pct(times, 99))
		r.ChangeAll = append(r.ChangeAll, pct(times, 100))
		r.ChangeMissing = append(r.ChangeMissing, missing)
		r.CPUPerChangeSec = append(r.CPUPerChangeSec, cp.proc.cpuSeconds()-cpuBefore)
		r.HarnessCPUPerChangeSec = append(r.HarnessCPUPerChangeSec, selfCPUSeconds()-selfBefore)
	}
	r.RSSKB, r.PeakRSSKB = cp.proc.memKB("VmRSS"), cp.proc.memKB("VmHWM")
	if profiled != nil {
		errs := []error{<-profiled}
		for _, name := range []string{"heap", "allocs"} {
			errs = append(errs, cp.profile(ctx, name, filepath.Join(profileDir, fmt.Sprintf("cp-%s-%s-%d-%s.pprof", source, xds, proxies, name))))
		}
		if err := errors.Join(errs...); err != nil && r.Error == "" {
			r.Error = "profiles: " + err.Error()
		}
	}
	return r
}

// startSelfProfile starts the harness's CPU profile into path; stop ends it.
func startSelfProfile(path string) (stop func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// selfCPUSeconds is the harness process's own CPU time (user + system).
func selfCPUSeconds() float64 {
	st, err := readStat(os.Getpid())
	if err != nil {
		return 0
	}
	return float64(st.utime+st.stime) / clockTicks
}

// profile saves one of the control plane's Go profiles
// (/debug/pprof/WHAT, admin token from its state directory) to path.
func (cp *controlPlane) profile(ctx context.Context, what, path string) error {
	tok, err := os.ReadFile(filepath.Join(cpStateDir(cp.configDir), apiauth.StateFile))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+cp.monitoring+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", what, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// The xDS variants of the simulated proxies (-cp-xds).
const (
	xdsSotW  = "sotw"
	xdsDelta = "delta"
)

// xdsName says which xDS variant a control-plane run's proxies spoke.
func xdsName(x string) string {
	if x == xdsDelta {
		return "delta xDS"
	}
	return "state-of-the-world xDS"
}

// changeKinds are the changes of one round, in order.
var changeKinds = []string{"cluster", "route", "endpoint"}

// cpChange is change kind number round: the file to write into the config
// directory, its content, and the type and text of the response that
// shows a proxy the change.
//   - cluster: a new Service with a WorkloadEntry (every type changes);
//   - route: a VirtualService for svc-0000 that sets a request header
//     (RDS only);
//   - endpoint: svc-0000's WorkloadEntry moves to a new address (EDS only).
func cpChange(kind string, round, services int) (file, yaml, typeURL, text string) {
	switch kind {
	case "route":
		text = fmt.Sprintf("bench-route-%d-end", round)
		return "bench-route.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bench-route
  namespace: default
spec:
  hosts: [svc-0000]
  http:
  - headers:
      request:
        set:
          x-bench-change: %s
    route:
    - destination:
        host: svc-0000
`, text), resource.RouteType, text
	case "endpoint":
		text = fmt.Sprintf("198.19.%d.7", round+1)
		return "services.yaml", strings.Replace(servicesYAML("svc", services), "address: 198.18.1.1\n", "address: "+text+"\n", 1), resource.EndpointType, text
	}
	name := fmt.Sprintf("change-%d", round)
	return name + ".yaml", servicesYAML(name, 1), resource.ClusterType, name + "-0000."
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
