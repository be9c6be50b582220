// Command bench is Weft's benchmark harness (issue 7): on loopback, in one
// run and interleaved so machine drift hits every topology alike, it loads
// a 1 KB backend directly and through sidecar pairs of Weft, nginx, HAProxy
// and Caddy with fortio (Weft, nginx and HAProxy also with mutual TLS
// between the pair), measures the proxies' CPU and memory from /proc,
// weft-proxy's idle memory, and the control plane's push latency with
// simulated proxies, and writes bench/results/<date>-<commit>.{json,md}.
//
//	go run ./bench          full run (< 15 min on 2 cores)
//	go run ./bench -smoke   a tiny run that only proves the harness works
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	flog "fortio.org/log"
)

func main() {
	if addr := os.Getenv(serveEnv); addr != "" {
		os.Exit(serveBackend(addr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the harness's flags.
type options struct {
	smoke        bool
	out          string
	bin          string
	rounds       int
	latency      time.Duration
	max          time.Duration
	tail         time.Duration
	warmup       time.Duration
	qps          float64
	budget       time.Duration
	cpServices   int
	cpProxies    []int
	cpSources    []string
	cpXDS        []string // "sotw", "delta"
	cpChanges    int
	cpMaxRSS     int64 // KiB
	cpProfile    string
	idleServices int
	keep         bool
	parts        map[string]bool
	topologies   map[string]bool
	scenarios    map[string]bool // load cells to run (nil: all)
	weftEnv      []string        // for every weft-proxy of the load part
	altBin       string          // weft-alt's weft-proxy directory (default: bin)
	altEnv       []string        // for weft-alt's proxies, after weftEnv
	reserve      time.Duration   // of the budget, kept for idle and control-plane parts
	self         string          // executable that serves the backend (default: this one)
	soak         time.Duration   // > 0: only the soak (soak.go)
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.smoke, "smoke", false, "tiny durations and sizes: checks the harness, says nothing about speed")
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results; smoke: a temp dir)")
	fs.StringVar(&o.bin, "bin", "", "directory with weft and weft-proxy (default <module root>/bin)")
	fs.IntVar(&o.rounds, "rounds", 2, "interleaved rounds per cell")
	fs.DurationVar(&o.latency, "latency-duration", 9*time.Second, "duration of a fixed-QPS latency cell, per round")
	fs.DurationVar(&o.max, "max-duration", 7*time.Second, "duration of a max-throughput cell, per round")
	fs.DurationVar(&o.tail, "tail-duration", 8*time.Second, "duration of a 200-connection cell, per round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each cell")
	fs.Float64Var(&o.qps, "qps", 1000, "rate of the latency cells")
	fs.DurationVar(&o.budget, "budget", 13*time.Minute, "the whole run's time limit: load cells stop early to leave the rest time")
	fs.IntVar(&o.cpServices, "cp-services", 1000, "services in the control-plane benchmark")
	cpProxies := fs.String("cp-proxies", "100,2000", "simulated proxies in the control-plane benchmark; a list runs each size, smallest first")
	cpSources := fs.String("cp-source", sourceDir, "config sources of the control-plane benchmark: dir (a watched directory), kube (a kube-apiserver started from internal/kubetest; needs tools/kube/build.sh), or both: dir,kube")
	cpXDS := fs.String("cp-xds", "sotw,delta", "xDS variants the simulated proxies speak in the control-plane benchmark: sotw (state of the world), delta (incremental, as weft-proxy), or both")
	fs.IntVar(&o.cpChanges, "cp-changes", 3, "rounds of config changes timed in the control-plane benchmark (each: a new cluster, a route change, an endpoint move)")
	fs.StringVar(&o.cpProfile, "cp-profile", "", "directory for the control plane's CPU profile over the changes (first 30 s) and heap and allocation profiles after them (go tool pprof bin/weft FILE), and the harness's own CPU profile over the changes (*-harness-cpu.pprof: the simulated proxies)")
	maxRSS := fs.Int64("cp-max-rss", 6144, "MiB: stop adding simulated proxies once the control plane's RSS passes this (protects a shared machine)")
	fs.IntVar(&o.idleServices, "idle-services", 1000, "services for weft-proxy's loaded idle RSS")
	fs.DurationVar(&o.soak, "soak", 0, "run only the soak: the Weft pair at -qps for this long, RSS sampled every 10 s (e.g. 10m)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir with configs and process logs")
	parts := fs.String("parts", "load,idle,cp", "what to run: load (proxy topologies), idle (weft-proxy idle RSS), cp (control plane), ingress-tls (HTTPS ingress: Weft's gateway, nginx, HAProxy terminating TLS; not in the default)")
	topos := fs.String("topologies", "direct,nginx,nginx-tls,haproxy,haproxy-tls,caddy,weft,weft-mtls,weft-authz", "topologies for the load part")
	weftEnv := fs.String("weft-env", "", "environment for every weft-proxy of the load part, KEY=VALUE separated by spaces (e.g. GODEBUG=gctrace=1; the output is in the -keep dir's logs)")
	fs.StringVar(&o.altBin, "alt-bin", "", "directory with the weft-proxy of the weft-alt topology (default: -bin): an A/B comparison of two builds in one run")
	altEnv := fs.String("alt-env", "", "environment for weft-alt's proxies, after -weft-env (e.g. GOGC=200)")
	scens := fs.String("scenarios", "", "load scenarios to run (default all): latency-h1,latency-h2c,max-h1,max-h2c,tail-h1-200c")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.parts, o.topologies = set(*parts), set(*topos)
	o.weftEnv, o.altEnv = strings.Fields(*weftEnv), strings.Fields(*altEnv)
	for _, kv := range append(slices.Clone(o.weftEnv), o.altEnv...) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("-weft-env, -alt-env: %q is not KEY=VALUE", kv)
		}
	}
	if *scens != "" {
		o.scenarios = set(*scens)
		for name := range o.scenarios {
			if !slices.ContainsFunc(scenarios(o), func(s scenario) bool { return s.Name == name }) {
				return nil, fmt.Errorf("-scenarios: no scenario %q", name)
			}
		}
	}
	o.cpMaxRSS = *maxRSS * 1024
	if o.smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { o.rounds = 1 })
		def("latency-duration", func() { o.latency = 700 * time.Millisecond })
		def("max-duration", func() { o.max = 500 * time.Millisecond })
		def("tail-duration", func() { o.tail = 500 * time.Millisecond })
		def("warmup", func() { o.warmup = 0 })
		def("qps", func() { o.qps = 200 })
		def("budget", func() { o.budget = 90 * time.Second })
		def("cp-services", func() { o.cpServices = 20 })
		def("cp-proxies", func() { *cpProxies = "10" })
		def("cp-changes", func() { o.cpChanges = 1 })
		def("idle-services", func() { o.idleServices = 20 })
	}
	// Load cells stop early enough to leave the idle and control-plane
	// parts about 38 % of the budget (5 min of 13).
	o.reserve = o.budget * 38 / 100
	for f := range set(*cpProxies) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-cp-proxies: bad size %q", f)
		}
		o.cpProxies = append(o.cpProxies, n)
	}
	slices.Sort(o.cpProxies)
	for _, s := range strings.Split(*cpSources, ",") {
		if s = strings.TrimSpace(s); s != sourceDir && s != sourceKube {
			return nil, fmt.Errorf("-cp-source: %q is neither dir nor kube", s)
		}
		o.cpSources = append(o.cpSources, s)
	}
	for _, x := range strings.Split(*cpXDS, ",") {
		if x = strings.TrimSpace(x); x != xdsSotW && x != xdsDelta {
			return nil, fmt.Errorf("-cp-xds: %q is neither sotw nor delta", x)
		}
		o.cpXDS = append(o.cpXDS, x)
	}
	return o, nil
}

func set(csv string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(csv, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// scenarios are the load cells, all of them or those -scenarios names.
func scenarios(o *options) []scenario {
	all := []scenario{
		{Name: "latency-h1", QPS: o.qps, Conns: 16, Duration: o.latency, Key: "p99"},
		{Name: "latency-h2c", QPS: o.qps, Conns: 16, H2C: true, Duration: o.latency, Key: "p99"},
		{Name: "max-h1", Conns: 64, Duration: o.max, Key: "qps"},
		{Name: "max-h2c", Conns: 64, H2C: true, Duration: o.max, Key: "qps"},
		{Name: "tail-h1-200c", QPS: o.qps, Conns: 200, Duration: o.tail, Key: "p99"},
	}
	if o.scenarios == nil {
		return all
	}
	return slices.DeleteFunc(all, func(s scenario) bool { return !o.scenarios[s.Name] })
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	flog.SetOutput(stderr)
	flog.SetLogLevelQuiet(flog.Critical) // failures are counted per cell
	lock, err := lockRun(ctx, func() { log.Info("waiting for another bench run to finish", "lock", lockPath) })
	if err != nil {
		log.Error("run lock", "error", err)
		return 1
	}
	defer lock.Close()
	began := time.Now()
	root := moduleRoot()
	if o.bin == "" {
		o.bin = filepath.Join(root, "bin")
	}
	if o.out == "" && !o.smoke {
		o.out = filepath.Join(root, "bench", "results")
	}
	tmp, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		log.Error("temp dir", "error", err)
		return 1
	}
	if o.keep {
		log.Info("keeping work dir", "dir", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.out == "" {
		// Smoke results go to a temp dir of their own that outlives the run.
		if o.out, err = os.MkdirTemp("", "weft-bench-results-"); err != nil {
			log.Error("results dir", "error", err)
			return 1
		}
	}

	rep := newReport(o)
	self := o.self
	if self == "" {
		if self, err = os.Executable(); err != nil {
			log.Error("own executable", "error", err)
			return 1
		}
	}
	backendAddr := net.JoinHostPort(backendIP, strconv.Itoa(backendPort))
	backend, err := start(tmp, "backend", []string{serveEnv + "=" + backendAddr}, self)
	if err != nil {
		log.Error("backend", "error", err)
		return 1
	}
	defer backend.stop()
	if err := waitHTTP(ctx, "http://"+backendAddr+"/", "", backend, 10*time.Second); err != nil {
		log.Error("backend", "error", err)
		return 1
	}
	if o.soak > 0 {
		return runSoak(ctx, o, log, stdout, tmp)
	}

	topos := []*topology{{Name: "direct", URL: "http://" + backendAddr + "/", H2CURL: "http://" + backendAddr + "/",
		Host: fmt.Sprintf("server:%d", backendPort), Hops: "client →h1/h2c→ backend"}}
	rep.addTopology(topos[0], "")
	peers := []struct {
		name, bin string
		mk        proxyStarter
		h2cSame   bool
		hops      string
		tls       bool
	}{
		{"nginx", nginxBin, startNginx, false, "client →h1/h2c→ nginx →h1 keep-alive→ nginx →h1 keep-alive→ backend", false},
		{"nginx-tls", nginxBin, startNginx, false, "client →h1/h2c→ nginx →h1 over mutual TLS 1.3 (P-256 client cert), keep-alive→ nginx →h1 keep-alive→ backend", true},
		{"haproxy", haproxyBin, startHAProxy, false, "client →h1/h2c→ haproxy →h1 keep-alive→ haproxy →h1 keep-alive→ backend", false},
		{"haproxy-tls", haproxyBin, startHAProxy, false, "client →h1/h2c→ haproxy →h1 over mutual TLS 1.3 (P-256 client cert), keep-alive→ haproxy →h1 keep-alive→ backend", true},
		{"caddy", caddyBin, startCaddy, true, "client →h1/h2c→ caddy →h1 keep-alive→ caddy →h1 keep-alive→ backend", false},
	}
	for _, p := range peers {
		if !o.parts["load"] || !o.topologies[p.name] {
			continue
		}
		if _, err := os.Stat(p.bin); err != nil {
			rep.addTopology(&topology{Name: p.name, Hops: p.hops}, "binary missing: "+err.Error())
			continue
		}
		t, err := startPair(ctx, p.name, tmp, backendAddr, p.mk, p.h2cSame, p.hops, p.tls)
		if err != nil {
			log.Warn("peer not available", "peer", p.name, "error", err)
			rep.addTopology(&topology{Name: p.name, Hops: p.hops}, err.Error())
			continue
		}
		defer t.close()
		topos = append(topos, t)
		rep.addTopology(t, "")
	}
	weftBin, proxyBin, weftErr := weftBins(o.bin)
	for _, v := range weftVariants {
		name := v.name
		if !o.parts["load"] || !o.topologies[name] {
			continue
		}
		err, vBin := weftErr, proxyBin
		v.env = o.weftEnv
		if v.alt {
			v.env = append(slices.Clone(o.weftEnv), o.altEnv...)
			if err == nil && o.altBin != "" {
				_, vBin, err = weftBins(o.altBin)
			}
		}
		if err == nil {
			var t *topology
			if t, err = startWeft(ctx, weftBin, vBin, tmp, v); err == nil {
				defer t.close()
				topos = append(topos, t)
				rep.addTopology(t, "")
				continue
			}
		}
		log.Warn(name+": not available", "reason", err)
		rep.addTopology(&topology{Name: name}, err.Error())
		if v.name == "weft" {
			weftErr = err
		}
	}

	if o.parts["load"] {
		runCells(ctx, o, log, rep, topos, began)
	}
	for _, t := range topos {
		rep.addPeaks(t)
	}
	for _, t := range topos[1:] {
		t.close()
	}

	if o.parts["ingress-tls"] {
		rep.runIngress(ctx, o, log, tmp, backendAddr, weftBin, proxyBin, weftErr)
	}
	switch {
	case !o.parts["idle"]:
		rep.IdleNote = "not run (-parts)"
	case weftErr == nil && ctx.Err() == nil:
		for _, n := range []int{0, o.idleServices} {
			log.Info("idle weft-proxy", "services", n)
			rep.Idle = append(rep.Idle, measureIdle(ctx, weftBin, proxyBin, tmp, n))
		}
	default:
		rep.IdleNote = fmt.Sprintf("weft: not available: %v", weftErr)
	}
	if !o.parts["cp"] {
		rep.CPNote = "not run (-parts)"
	} else if cpBin, err := controlPlaneBin(o.bin); err != nil {
		rep.CPNote = fmt.Sprintf("weft control-plane: not available: %v", err)
	} else {
		end := began.Add(o.budget)
		type cpRun struct {
			proxies     int
			source, xds string
		}
		var runs []cpRun
		for _, n := range o.cpProxies {
			for _, src := range o.cpSources {
				for _, x := range o.cpXDS {
					runs = append(runs, cpRun{n, src, x})
				}
			}
		}
		for i, run := range runs {
			if ctx.Err() != nil {
				break
			}
			// Every run after this one keeps 75 s of the budget.
			deadline := end.Add(-time.Duration(len(runs)-1-i) * 75 * time.Second)
			if time.Until(deadline) < 10*time.Second {
				rep.ControlPlane = append(rep.ControlPlane, cpResult{Source: run.source, XDS: run.xds, Services: o.cpServices, Proxies: run.proxies, Error: "not run: time budget spent"})
				continue
			}
			log.Info("control plane", "source", run.source, "xds", run.xds, "services", o.cpServices, "proxies", run.proxies, "until", time.Until(deadline).Round(time.Second))
			r := benchControlPlane(ctx, run.source, run.xds, cpBin, tmp, o.cpServices, run.proxies, o.cpChanges, deadline, o.cpMaxRSS, o.cpProfile)
			rep.ControlPlane = append(rep.ControlPlane, r)
		}
	}
	rep.Elapsed = time.Since(began).Round(time.Second).String()
	jsonPath, mdPath, err := rep.write(o.out)
	if err != nil {
		log.Error("writing report", "error", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\nwrote %s\n", jsonPath, mdPath)
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// controlPlaneBin checks bin/weft has the control-plane command.
func controlPlaneBin(binDir string) (string, error) {
	weft := filepath.Join(binDir, "weft")
	if _, err := os.Stat(weft); err != nil {
		return "", fmt.Errorf("%s not built (make build)", weft)
	}
	if out, err := execHelp(weft, "control-plane", "config-dir"); err != nil {
		return "", fmt.Errorf("`weft control-plane` not implemented yet (%v: %s)", err, out)
	}
	return weft, nil
}

// runCells runs every scenario on every topology, rounds times, rotating
// the topology order per round and scenario so that no topology always
// runs first or last.
func runCells(ctx context.Context, o *options, log *slog.Logger, rep *report, topos []*topology, began time.Time) {
	scs := scenarios(o)
	rep.Scenarios = scs
	for round := 0; round < o.rounds; round++ {
		for si, s := range scs {
			for k := range topos {
				t := topos[(k+round+si)%len(topos)]
				c := &cell{Scenario: s.Name, Topology: t.Name, Round: round}
				rep.Cells = append(rep.Cells, c)
				switch {
				case ctx.Err() != nil:
					c.Skipped = "interrupted"
					continue
				case time.Since(began)+s.Duration+o.warmup > o.budget-o.reserve:
					c.Skipped = fmt.Sprintf("time budget spent (%v, %v kept for idle and control-plane parts)", o.budget, o.reserve)
					continue
				}
				url := t.URL
				if s.H2C {
					url = t.H2CURL
				}
				if url == "" {
					c.Skipped = "first hop does not accept h2c"
					continue
				}
				if o.warmup > 0 {
					runLoad(url, t.Host, s, o.warmup)
				}
				before := map[string]float64{}
				for _, p := range t.Procs {
					before[p.name] = p.cpuSeconds()
				}
				t0 := time.Now()
				other := otherWork()
				res, err := runLoad(url, t.Host, s, s.Duration)
				if err != nil {
					c.Skipped = err.Error()
					log.Warn("cell failed", "scenario", s.Name, "topology", t.Name, "error", err)
					continue
				}
				res.Scenario, res.Topology, res.Round = c.Scenario, c.Topology, c.Round
				if cores, ok := other(time.Since(t0).Seconds()); ok {
					res.OtherCores = &cores
				}
				*c = *res
				t.noteAnon()
				if len(t.Procs) > 0 {
					c.CPUSec = map[string]float64{}
					total := 0.0
					for _, p := range t.Procs {
						d := p.cpuSeconds() - before[p.name]
						c.CPUSec[p.name] = d
						total += d
					}
					if c.Requests > 0 {
						c.CPUPer1k = total / (float64(c.Requests) / 1000)
					}
				}
				if c.OK == 0 {
					c.Skipped = fmt.Sprintf("no successful request (codes %v)", c.Codes)
				}
				// A proxy that died explains the failures; say so.
				for _, p := range t.Procs {
					if p.exited() {
						c.Skipped = strings.TrimSpace(c.Skipped + fmt.Sprintf("; %s exited: %v: %s", p.name, p.err, p.tail()))
					}
				}
				log.Info("cell", "round", round, "scenario", s.Name, "topology", t.Name, "qps", fmt.Sprintf("%.0f", c.QPS),
					"p50_ms", fmt.Sprintf("%.3f", c.P50Ms), "p99_ms", fmt.Sprintf("%.3f", c.P99Ms), "errors", c.Errors, "other_cores", fmtCores(c.OtherCores))
			}
		}
	}
}

func fmtCores(c *float64) string {
	if c == nil {
		return "?"
	}
	return fmt.Sprintf("%.2f", *c)
}
