package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The soak mode (`-soak 10m`, issue 17): the plain Weft sidecar pair at a
// fixed rate for a long time, each proxy's RSS sampled every 10 s, and the
// growth after warm-up reported. A leak per request or per connection
// shows as a slope that a 7 s cell cannot see. Not run by CI or `make
// bench`: it takes as long as it says.

// soakConns is the soak's client connection count (the latency cells').
const soakConns = 16

// soakLimit is issue 17's bound on RSS growth after warm-up.
const soakLimit = 0.10

// soakSample is every proxy's RSS at one moment.
type soakSample struct {
	At    time.Duration    `json:"at_ns"`
	RSSKB map[string]int64 `json:"rss_kb"`
}

// soakProxy is one proxy's RSS over the soak.
type soakProxy struct {
	Name string `json:"name"`
	// WarmKB is the RSS when warm-up ended, FinalKB the mean of the last
	// three samples (one sample is noisy: the GC's cycle), PeakKB the
	// highest sample and VmHWM the kernel's peak.
	WarmKB  int64   `json:"warm_kb"`
	FinalKB int64   `json:"final_kb"`
	PeakKB  int64   `json:"peak_kb"`
	HWMKB   int64   `json:"vmhwm_kb"`
	Growth  float64 `json:"growth"` // (final - warm) / warm
	OK      bool    `json:"within_limit"`
}

// soakReport is what -soak writes.
type soakReport struct {
	Date     string        `json:"date"`
	Commit   string        `json:"commit"`
	Machine  machine       `json:"machine"`
	Duration string        `json:"duration"`
	Warmup   string        `json:"warmup"`
	Interval string        `json:"interval"`
	QPS      float64       `json:"qps_target"`
	Conns    int           `json:"connections"`
	Load     *cell         `json:"load,omitempty"`
	Samples  []soakSample  `json:"samples"`
	Proxies  []soakProxy   `json:"proxies"`
	Error    string        `json:"error,omitempty"`
	Elapsed  time.Duration `json:"-"`
}

// soakTiming: samples every 10 s and a warm-up of a tenth of the run (at
// least 30 s); a short run (smoke) samples often enough to have a slope.
func soakTiming(d time.Duration) (interval, warmup time.Duration) {
	interval = 10 * time.Second
	if d/interval < 6 {
		interval = max(d/6, 100*time.Millisecond)
	}
	warmup = max(d/10, 30*time.Second)
	if warmup > d/2 {
		warmup = d / 4
	}
	return interval, warmup
}

// soakGrowth summarizes one proxy's samples: the RSS at the first sample
// at or after warmup, the mean of the last three and the peak.
func soakGrowth(name string, samples []soakSample, warmup time.Duration) soakProxy {
	p := soakProxy{Name: name}
	var after []int64
	for _, s := range samples {
		v := s.RSSKB[name]
		p.PeakKB = max(p.PeakKB, v)
		if s.At >= warmup {
			after = append(after, v)
		}
	}
	if len(after) == 0 {
		return p
	}
	p.WarmKB = after[0]
	tail := after[max(len(after)-3, 0):]
	var sum int64
	for _, v := range tail {
		sum += v
	}
	p.FinalKB = sum / int64(len(tail))
	if p.WarmKB > 0 {
		p.Growth = float64(p.FinalKB-p.WarmKB) / float64(p.WarmKB)
	}
	p.OK = p.Growth <= soakLimit
	return p
}

// runSoak loads the Weft pair for o.soak at o.qps and writes
// <date>-<commit>-soak.{json,md} to o.out. The exit code is 1 when a
// proxy grew beyond the limit or the run failed.
func runSoak(ctx context.Context, o *options, log *slog.Logger, stdout io.Writer, tmp string) int {
	rep := &soakReport{Date: time.Now().UTC().Format("2006-01-02"), Commit: gitCommit(), Machine: describeMachine(),
		Duration: o.soak.String(), QPS: o.qps, Conns: soakConns}
	interval, warmup := soakTiming(o.soak)
	rep.Interval, rep.Warmup = interval.String(), warmup.String()
	fail := func(err error) int {
		rep.Error = err.Error()
		log.Error("soak", "error", err)
		writeSoak(o.out, rep, stdout)
		return 1
	}
	weftBin, proxyBin, err := weftBins(o.bin)
	if err != nil {
		return fail(err)
	}
	t, err := startWeft(ctx, weftBin, proxyBin, tmp, weftVariants[0])
	if err != nil {
		return fail(err)
	}
	defer t.close()
	log.Info("soak", "duration", o.soak, "qps", o.qps, "interval", interval, "warmup", warmup)
	sample := func(at time.Duration) {
		s := soakSample{At: at, RSSKB: map[string]int64{}}
		for _, p := range t.Procs {
			s.RSSKB[p.name] = p.memKB("VmRSS")
		}
		rep.Samples = append(rep.Samples, s)
	}
	type result struct {
		c   *cell
		err error
	}
	done := make(chan result, 1)
	cpu0 := map[string]float64{}
	for _, p := range t.Procs {
		cpu0[p.name] = p.cpuSeconds()
	}
	began := time.Now()
	go func() {
		c, err := runLoad(t.URL, t.Host, scenario{Name: "soak", QPS: o.qps, Conns: soakConns}, o.soak)
		done <- result{c, err}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sample(0)
	var res result
wait:
	for {
		select {
		case res = <-done:
			break wait
		case <-tick.C:
			sample(time.Since(began))
		case <-ctx.Done():
			// fortio stops at its duration; the interrupted report says so.
			res = <-done
			if res.err == nil {
				res.err = ctx.Err()
			}
			break wait
		}
	}
	sample(time.Since(began))
	if res.err != nil {
		return fail(res.err)
	}
	rep.Load = res.c
	rep.Load.Scenario, rep.Load.Topology = "soak", t.Name
	rep.Load.CPUSec = map[string]float64{}
	total := 0.0
	for _, p := range t.Procs {
		d := p.cpuSeconds() - cpu0[p.name]
		rep.Load.CPUSec[p.name] = d
		total += d
	}
	if rep.Load.Requests > 0 {
		rep.Load.CPUPer1k = total / (float64(rep.Load.Requests) / 1000)
	}
	code := 0
	for _, p := range t.Procs {
		if p.exited() {
			return fail(fmt.Errorf("%s exited: %v: %s", p.name, p.err, p.tail()))
		}
		sp := soakGrowth(p.name, rep.Samples, warmup)
		sp.HWMKB = p.memKB("VmHWM")
		if !sp.OK {
			code = 1
		}
		rep.Proxies = append(rep.Proxies, sp)
	}
	if rep.Load.Errors > 0 {
		code = 1
	}
	rep.Elapsed = time.Since(began)
	writeSoak(o.out, rep, stdout)
	return code
}

func writeSoak(dir string, rep *soakReport, stdout io.Writer) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stdout, "soak report:", err)
		return
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-soak", rep.Date, rep.Commit))
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(stdout, "soak report:", err)
		return
	}
	md := rep.markdown()
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		fmt.Fprintln(stdout, "soak report:", err)
		return
	}
	fmt.Fprintf(stdout, "wrote %s.json\nwrote %s.md\n%s", base, base, md)
}

func (r *soakReport) markdown() string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("# Soak: the Weft sidecar pair — %s, commit %s\n\n", r.Date, r.Commit)
	p("%d cores, %s, Go %s. %s at %.0f qps over %d connections (fortio, HTTP/1.1, 1 KB responses); "+
		"RSS of each proxy every %s; growth is the mean of the last three samples against the first sample after a %s warm-up "+
		"(limit %.0f %%).\n\n", r.Machine.Cores, r.Machine.CPU, r.Machine.Go, r.Duration, r.QPS, r.Conns, r.Interval, r.Warmup, soakLimit*100)
	if r.Error != "" {
		p("**Failed:** %s\n", r.Error)
		return b.String()
	}
	if l := r.Load; l != nil {
		p("| requests | errors | qps | p50 ms | p99 ms | p99.9 ms | proxy CPU s per 1k requests (pair) |\n|---|---|---|---|---|---|---|\n")
		p("| %d | %d | %.0f | %.3f | %.3f | %.3f | %.4f |\n\n", l.Requests, l.Errors, l.QPS, l.P50Ms, l.P99Ms, l.P999Ms, l.CPUPer1k)
	}
	p("| proxy | RSS after warm-up MiB | final MiB | peak sample MiB | VmHWM MiB | growth | within %.0f %% |\n|---|---|---|---|---|---|---|\n", soakLimit*100)
	for _, x := range r.Proxies {
		p("| %s | %.1f | %.1f | %.1f | %.1f | %+.1f %% | %v |\n", x.Name, mib(x.WarmKB), mib(x.FinalKB), mib(x.PeakKB), mib(x.HWMKB), x.Growth*100, x.OK)
	}
	p("\nSamples (MiB):\n\n| at |")
	for _, x := range r.Proxies {
		p(" %s |", x.Name)
	}
	p("\n|---|")
	for range r.Proxies {
		p("---|")
	}
	p("\n")
	for _, s := range r.Samples {
		p("| %s |", s.At.Round(time.Second))
		for _, x := range r.Proxies {
			p(" %.1f |", mib(s.RSSKB[x.Name]))
		}
		p("\n")
	}
	return b.String()
}

func mib(kb int64) float64 { return float64(kb) / 1024 }
