package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// report is everything one run measured; it is written as JSON and as a
// markdown summary.
type report struct {
	Date         string         `json:"date"`
	Commit       string         `json:"commit"`
	Smoke        bool           `json:"smoke"`
	Machine      machine        `json:"machine"`
	Settings     map[string]any `json:"settings"`
	Topologies   []topoInfo     `json:"topologies"`
	Scenarios    []scenario     `json:"scenarios"`
	Cells        []*cell        `json:"cells"`
	Summary      []summary      `json:"summary"`
	Idle         []idleResult   `json:"weft_proxy_idle,omitempty"`
	IdleNote     string         `json:"weft_proxy_idle_note,omitempty"`
	ControlPlane []cpResult     `json:"control_plane,omitempty"`
	CPNote       string         `json:"control_plane_note,omitempty"`
	// HTTPS ingress (-parts ingress-tls): see ingress.go.
	Ingress      []*ingressCell `json:"https_ingress,omitempty"`
	IngressTopos []topoInfo     `json:"https_ingress_topologies,omitempty"`
	Elapsed      string         `json:"elapsed"`
	started      time.Time
}

type topoInfo struct {
	Name      string `json:"name"`
	Hops      string `json:"hops,omitempty"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// Verified says how the harness checked the security of the hop
	// between the pair (TLS topologies and Weft).
	Verified  string           `json:"verified,omitempty"`
	PeakRSSKB map[string]int64 `json:"peak_rss_kb,omitempty"` // per proxy process (tree)
	// PeakAnonKB: the largest private memory (RssAnon) at the end of a
	// load cell, per proxy process (tree).
	PeakAnonKB map[string]int64 `json:"peak_anon_kb,omitempty"`
}

// summary averages a scenario's cells for one topology over the rounds.
type summary struct {
	Scenario string  `json:"scenario"`
	Topology string  `json:"topology"`
	Rounds   int     `json:"rounds"`
	QPS      float64 `json:"qps"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p99_9_ms"`
	Errors   int64   `json:"errors"`
	CPUPer1k float64 `json:"cpu_seconds_per_1k_requests"`
	Skipped  string  `json:"skipped,omitempty"`
}

func newReport(o *options) *report {
	now := time.Now().UTC()
	return &report{
		Date:    now.Format("2006-01-02"),
		Commit:  gitCommit(),
		Smoke:   o.smoke,
		Machine: describeMachine(),
		Settings: map[string]any{
			"rounds": o.rounds, "latency_cell": o.latency.String(), "max_cell": o.max.String(),
			"tail_cell": o.tail.String(), "warmup": o.warmup.String(), "qps": o.qps,
			"cp_services": o.cpServices, "cp_proxies": o.cpProxies, "cp_changes": o.cpChanges,
			"idle_services": o.idleServices, "budget": o.budget.String(),
		},
		started: now,
	}
}

func (r *report) addTopology(t *topology, reason string) {
	r.Topologies = append(r.Topologies, topoInfo{Name: t.Name, Hops: t.Hops, Available: reason == "", Reason: reason, Verified: t.Verified})
}

// addPeaks records each proxy's VmHWM (peak over the whole run).
func (r *report) addPeaks(t *topology) {
	for i := range r.Topologies {
		if r.Topologies[i].Name != t.Name || len(t.Procs) == 0 {
			continue
		}
		r.Topologies[i].PeakRSSKB = map[string]int64{}
		for _, p := range t.Procs {
			r.Topologies[i].PeakRSSKB[p.name] = p.memKB("VmHWM")
		}
		if len(t.anonKB) > 0 {
			r.Topologies[i].PeakAnonKB = t.anonKB
		}
	}
}

func (r *report) summarize() {
	r.Summary = nil
	for _, s := range r.Scenarios {
		for _, t := range r.Topologies {
			if !t.Available {
				continue
			}
			sm := summary{Scenario: s.Name, Topology: t.Name}
			for _, c := range r.Cells {
				if c.Scenario != s.Name || c.Topology != t.Name {
					continue
				}
				if c.Skipped != "" {
					sm.Skipped = c.Skipped
					continue
				}
				sm.Rounds++
				sm.QPS += c.QPS
				sm.P50Ms += c.P50Ms
				sm.P90Ms += c.P90Ms
				sm.P99Ms += c.P99Ms
				sm.P999Ms += c.P999Ms
				sm.Errors += c.Errors
				sm.CPUPer1k += c.CPUPer1k
			}
			if n := float64(sm.Rounds); n > 0 {
				sm.QPS /= n
				sm.P50Ms /= n
				sm.P90Ms /= n
				sm.P99Ms /= n
				sm.P999Ms /= n
				sm.CPUPer1k /= n
				sm.Skipped = ""
			}
			r.Summary = append(r.Summary, sm)
		}
	}
}

func (r *report) find(scenario, topo string) *summary {
	for i := range r.Summary {
		if r.Summary[i].Scenario == scenario && r.Summary[i].Topology == topo && r.Summary[i].Rounds > 0 {
			return &r.Summary[i]
		}
	}
	return nil
}

// write saves <date>-<commit>.json and .md in dir.
func (r *report) write(dir string) (string, string, error) {
	r.summarize()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s", r.Date, r.Commit))
	if r.Smoke {
		base += "-smoke"
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(base+".md", []byte(r.markdown()), 0o644); err != nil {
		return "", "", err
	}
	return base + ".json", base + ".md", nil
}

func ms(v float64) string { return fmt.Sprintf("%.3f", v) }

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	title := "Weft benchmark"
	if r.Smoke {
		title += " (smoke run: tiny durations, the numbers mean nothing)"
	}
	p("# %s — %s, commit %s\n\n", title, r.Date, r.Commit)
	m := r.Machine
	p("Machine: %s, %d cores, %s RAM, Linux %s, %s. Peers: %s; %s; %s. Run took %s.\n\n",
		m.CPU, m.Cores, m.MemTotal, m.Kernel, m.Go, m.Peers["nginx"], firstWords(m.Peers["haproxy"], 3), m.Peers["caddy"], r.Elapsed)

	p("## Topologies\n\n| topology | path | status | security of the hop between the pair, as checked |\n|---|---|---|---|\n")
	for _, t := range r.Topologies {
		st := "measured"
		if !t.Available {
			st = t.Name + ": not available: " + oneLine(t.Reason)
		}
		p("| %s | %s | %s | %s |\n", t.Name, t.Hops, st, orDash(oneLine(t.Verified)))
	}
	p("\n")

	for _, s := range r.Scenarios {
		load := fmt.Sprintf("%.0f qps", s.QPS)
		if s.QPS == 0 {
			load = "max qps"
		}
		proto := "HTTP/1.1"
		if s.H2C {
			proto = "h2c"
		}
		p("## %s — %s, %d connections, %s, %v × %d round(s)\n\n", s.Name, load, s.Conns, proto, s.Duration, r.Settings["rounds"])
		p("| topology | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | proxy CPU s / 1k req | %s vs direct |\n|---|---|---|---|---|---|---|---|---|\n", s.Key)
		direct := r.find(s.Name, "direct")
		for _, t := range r.Topologies {
			if !t.Available {
				continue
			}
			sm := r.find(s.Name, t.Name)
			if sm == nil {
				reason := "not run"
				for _, x := range r.Summary {
					if x.Scenario == s.Name && x.Topology == t.Name && x.Skipped != "" {
						reason = x.Skipped
					}
				}
				p("| %s | skipped: %s | | | | | | | |\n", t.Name, oneLine(reason))
				continue
			}
			vs := "–"
			if direct != nil && t.Name != "direct" {
				vs = ratio(key(sm, s.Key), key(direct, s.Key))
			}
			cpu := "–"
			if t.Name != "direct" {
				cpu = fmt.Sprintf("%.4f", sm.CPUPer1k)
			}
			p("| %s | %.0f | %s | %s | %s | %s | %d | %s | %s |\n", t.Name, sm.QPS, ms(sm.P50Ms), ms(sm.P90Ms), ms(sm.P99Ms), ms(sm.P999Ms), sm.Errors, cpu, vs)
		}
		// Ratio matrix of the key figure: row ÷ column.
		var names []string
		for _, t := range r.Topologies {
			if r.find(s.Name, t.Name) != nil {
				names = append(names, t.Name)
			}
		}
		if len(names) > 1 {
			p("\n%s ratios (row ÷ column):\n\n| |%s|\n|---|%s\n", s.Key, strings.Join(names, " | ")+" ", strings.Repeat("---|", len(names)))
			for _, a := range names {
				p("| %s |", a)
				for _, c := range names {
					p(" %s |", ratio(key(r.find(s.Name, a), s.Key), key(r.find(s.Name, c), s.Key)))
				}
				p("\n")
			}
		}
		if lo, hi, ok := r.otherWork(s.Name); ok {
			p("\nOther work on the machine during these cells (CPU used outside the harness and its processes): %.2f-%.2f cores.\n", lo, hi)
		}
		p("\n")
	}

	r.cpuTable(p)
	p("## Proxy memory (peak RSS over the whole run, VmHWM)\n\n" +
		"Private memory is RssAnon (heap, stacks, runtime) at the end of the load cell where it was largest: " +
		"RSS also counts the binary's pages, which all sidecars running one image on a node share.\n\n" +
		"| topology | process | peak RSS MiB | private MiB (RssAnon, largest after a cell) |\n|---|---|---|---|\n")
	for _, t := range r.Topologies {
		keys := make([]string, 0, len(t.PeakRSSKB))
		for k := range t.PeakRSSKB {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			anon := "–"
			if v, ok := t.PeakAnonKB[k]; ok {
				anon = fmt.Sprintf("%.1f", float64(v)/1024)
			}
			p("| %s | %s | %.1f | %s |\n", t.Name, k, float64(t.PeakRSSKB[k])/1024, anon)
		}
	}
	p("\n## weft-proxy idle memory\n\n")
	if len(r.Idle) == 0 {
		p("%s\n\n", orDash(r.IdleNote))
	} else {
		p("| services in the mesh | clusters the proxy shows | RSS MiB (settled) | of which private (RssAnon) | peak RSS MiB | note |\n|---|---|---|---|---|---|\n")
		for _, i := range r.Idle {
			p("| %d | %d | %.1f | %.1f | %.1f | %s |\n", i.Services, i.Clusters, float64(i.RSSKB)/1024, float64(i.AnonKB)/1024, float64(i.HWMKB)/1024, oneLine(i.Error))
		}
		p("\n")
	}
	r.ingressMarkdown(p)
	p("## Control plane\n\n")
	if len(r.ControlPlane) == 0 {
		p("%s\n\n", orDash(r.CPNote))
	}
	for _, c := range r.ControlPlane {
		p("### %d services, %d simulated proxies (%d synced, %s), config from %s\n\n", c.Services, c.Proxies, c.Connected, xdsName(c.XDS), sourceName(c.Source))
		if c.Stopped != "" {
			p("Note: %s; the changes below ran with %d proxies.\n\n", oneLine(c.Stopped), c.Connected)
		}
		if c.Error != "" {
			p("Error: %s\n\n", oneLine(c.Error))
		}
		p("| figure | value |\n|---|---|\n")
		p("| initial sync p50 / p99 / all (ms) | %s / %s / %s |\n", ms(c.InitialSyncP50), ms(c.InitialSyncP99), ms(c.InitialSyncMax))
		kind := func(i int) string {
			if i < len(c.ChangeKind) {
				return " (" + c.ChangeKind[i] + ")"
			}
			return ""
		}
		for i := range c.ChangeP50 {
			p("| change %d%s → ACK p50 / p99 / all (ms), not acked | %s / %s / %s, %d |\n", i+1, kind(i), ms(c.ChangeP50[i]), ms(c.ChangeP99[i]), ms(c.ChangeAll[i]), c.ChangeMissing[i])
		}
		p("| control-plane RSS / peak RSS (MiB) | %.1f / %.1f |\n", float64(c.RSSKB)/1024, float64(c.PeakRSSKB)/1024)
		p("| control-plane live heap after the last GC / largest (MB, gctrace) | %.0f / %.0f |\n", c.HeapLiveMB, c.HeapLivePeakMB)
		p("| control-plane CPU s: connect all proxies (batches of 100) | %.2f |\n", c.CPUConnectSec)
		for i, v := range c.CPUPerChangeSec {
			p("| control-plane CPU s: change %d%s | %.2f |\n", i+1, kind(i), v)
		}
		for i, v := range c.HarnessCPUPerChangeSec {
			p("| harness (simulated proxies) CPU s: change %d%s | %.2f |\n", i+1, kind(i), v)
		}
		p("\n")
	}
	p("%s", methodText)
	return b.String()
}

// cpuTable prints CPU seconds per 1,000 requests of each proxy process,
// per scenario (mean over rounds).
func (r *report) cpuTable(p func(string, ...any)) {
	type k struct{ topo, proc, sc string }
	sum, n := map[k]float64{}, map[k]int{}
	var rows [][2]string
	seen := map[[2]string]bool{}
	for _, c := range r.Cells {
		if c.Skipped != "" || c.Requests == 0 {
			continue
		}
		for proc, sec := range c.CPUSec {
			key := k{c.Topology, proc, c.Scenario}
			sum[key] += sec / (float64(c.Requests) / 1000)
			n[key]++
			if row := [2]string{c.Topology, proc}; !seen[row] {
				seen[row] = true
				rows = append(rows, row)
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i][0] != rows[j][0] {
			return rows[i][0] < rows[j][0]
		}
		return rows[i][1] < rows[j][1]
	})
	p("## Proxy CPU per process (CPU s per 1,000 requests)\n\n| topology | process |")
	for _, sc := range r.Scenarios {
		p(" %s |", sc.Name)
	}
	p("\n|---|---|%s\n", strings.Repeat("---|", len(r.Scenarios)))
	for _, row := range rows {
		p("| %s | %s |", row[0], row[1])
		for _, sc := range r.Scenarios {
			key := k{row[0], row[1], sc.Name}
			if n[key] == 0 {
				p(" – |")
				continue
			}
			p(" %.4f |", sum[key]/float64(n[key]))
		}
		p("\n")
	}
	p("\n")
}

func key(s *summary, k string) float64 {
	if s == nil {
		return 0
	}
	if k == "qps" {
		return s.QPS
	}
	return s.P99Ms
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

const methodText = `## Method

- Everything runs on loopback on this machine, in one invocation of ` + "`go run ./bench`" + `
  (` + "`make bench`" + `). The backend is a Go ` + "`net/http`" + ` server (a child process of the
  harness) answering every request with a 1,024-byte body, HTTP/1.1 and h2c (prior knowledge)
  on one port, 127.0.77.3:8080. All topologies share it.
- Topologies: **direct** (client → backend); the **sidecar pair** for each proxy: client →
  client-side proxy → server-side proxy → backend. nginx (2 workers, ` + "`keepalive 512`" + `
  upstream pool), HAProxy (` + "`nbthread 2`" + `, ` + "`http-reuse always`" + `) and Caddy
  (` + "`reverse_proxy`" + ` with its keep-alive pool) get generated configs in a temp dir and run
  as child processes on free ports; no access logs. Proxy-to-proxy and proxy-to-backend hops are
  HTTP/1.1 with keep-alive. nginx 1.22 and HAProxy 2.6 take h2c on a listener of their own, Caddy
  on its HTTP port. **weft**: a real ` + "`bin/weft control-plane`" + ` on a temp config dir holding a
  Kubernetes Service ` + "`server`" + ` (port 8080), and two ` + "`bin/weft-proxy sidecar`" + ` processes in
  explicit mode on their own loopback IPs: the client sends to the client sidecar's proxy port
  with ` + "`Host: server:8080`" + `; that sidecar routes by xDS to the server sidecar's inbound
  listener, which forwards to the backend. The client sends ` + "`Host: server:8080`" + ` everywhere.
- Load: fortio as a Go library (` + "`fortio.org/fortio/fhttp`" + ` on the ` + "`periodic`" + ` runner), one
  goroutine and one connection per "connection" (fortio's fast HTTP/1.1 client; for h2c fortio's
  standard client over ` + "`x/net/http2`" + ` with prior knowledge, one transport per connection).
  Scenarios: latency = fixed QPS with 16 connections; max = as fast as possible with 64
  connections; tail = the fixed QPS spread over 200 connections. Each cell gets an unmeasured
  warm-up, then the measured run. Percentiles are fortio's histogram percentiles of the request
  duration as the client sees it (interpolated within fortio's buckets, which widen above 1 ms:
  round values such as 4.000 are bucket edges).
- Interleaving: the cells run round by round; within a round scenario by scenario, and the
  order of the topologies rotates with round and scenario, so slow drift of the machine (other
  work, thermal) spreads over all topologies. Figures in the tables are the mean over rounds
  (the JSON keeps every cell).
- Other work: for each measured run, the CPU the machine spent (/proc/stat: user, nice, system,
  steal) minus what the harness and every process it started spent, in cores; each load
  scenario's table is followed by its range. On 2 cores the latency cells' tails move with it,
  and which topology's cells meet it is luck: compare tails from runs where it stayed low.
- CPU: utime + stime from ` + "`/proc/<pid>/stat`" + ` (USER_HZ = 100) of each proxy process and its
  live descendants (nginx workers), read right before and after the measured run; "proxy CPU s /
  1k req" is the sum over both proxies of the pair divided by thousands of requests completed.
  The load generator and backend are not counted.
- Memory: VmHWM (peak RSS) from ` + "`/proc/<pid>/status`" + `, summed over the process tree, read at
  the end of all load cells (so it is the peak over every scenario, including 200 connections).
  weft-proxy idle: a control plane with an empty config dir, or with N Services each with one
  WorkloadEntry, and one client sidecar (no traffic). Once the control plane's
  ` + "`/api/v1/proxies`" + ` shows CDS and LDS SYNCED for it and no type STALE or NACK, VmRSS is
  sampled every 250 ms until three samples agree within 2 %; the proxy's admin ` + "`/clusters`" + `
  then proves it holds the N services' clusters.
- Control plane: a real ` + "`bin/weft control-plane`" + ` with N Services (each with one
  WorkloadEntry, addresses in 198.18.0.0/16) and M simulated proxies in the harness process:
  ` + "`internal/meshtest`" + `'s ADS client in its lean mode (one gRPC stream each, wildcard
  CDS/EDS/LDS/RDS, every response ACKed at once, no resource decoded or kept: the
  change is looked for in the response's encoded resources; decoding cost megabytes and
  milliseconds per proxy at 1,000 services, on the cores the control plane runs on). Each size runs twice (` + "`-cp-xds`" + `): proxies speaking
  state-of-the-world xDS (every CDS and LDS response carries all of its type; EDS and RDS
  responses after an ACK only what changed, as the xDS protocol allows) and delta xDS
  (only added, changed and removed resources; weft-proxy's default), each against a fresh
  control plane. They connect in batches of 100, each
  batch once the previous one has synced; adding stops if the control plane's RSS passes
  ` + "`-cp-max-rss`" + ` (6 GiB) or the phase times out, and the report says so. Initial sync = from
  the dial of a proxy's batch to that proxy's first CDS and LDS responses (so it includes
  waiting behind the batch's other proxies). Each round of changes (` + "`-cp-changes`" + ` rounds) makes
  three, each a file renamed into the watched directory: **cluster** = one more Service +
  WorkloadEntry (CDS, EDS and RDS change), **route** = a VirtualService on one service setting a
  request header (RDS only), **endpoint** = one WorkloadEntry's address moved (EDS only; the
  services file is rewritten). Its time per proxy = from the rename to that proxy's receipt
  of the last response showing the change (for **cluster**, the last of the CDS, EDS and RDS
  responses naming the new service: it is usable only with all three; ACKed immediately). The
  simulated proxies' connections grant Envoy's default HTTP/2 windows (256 MiB), not
  gRPC-Go's 64 KiB start; p50/p99 over proxies,
  "all" = the slowest. This includes the control plane's file-watch debounce (100 ms default). Each phase
  may take up to 90 s within what is left of ` + "`-budget`" + ` (every later phase keeps 5 s, every
  larger proxy count 75 s); a phase cut short says so. The simulated proxies share the 2
  cores with the control plane. Control-plane CPU = utime + stime during the phase (the
  harness's own, mostly the simulated proxies', is reported beside it); RSS from /proc as above.
- Secured pairs, measured beside the plaintext ones in the same cells, tables and ratio
  matrices: **nginx-tls** and **haproxy-tls** are the nginx and HAProxy pairs with mutual TLS
  1.3 on the hop between the two proxies. The harness generates a throw-away CA and two ECDSA
  P-256 certificates per pair (server "server", client cert for the client side: the key type
  of Weft's workload certificates). The server side requires and verifies the client
  certificate (nginx ` + "`ssl_verify_client on`" + `, ` + "`ssl_protocols TLSv1.3`" + `, session cache and
  tickets; HAProxy ` + "`ssl … verify required ssl-min-ver TLSv1.3`" + `); the client side presents
  its certificate, verifies the server's against the CA and name, and resumes TLS sessions
  (nginx ` + "`proxy_ssl_session_reuse on`" + `; HAProxy's default). Before measuring, the harness
  checks the server side: a TLS 1.3 request with the client certificate is answered, while
  plaintext, TLS without a client certificate and TLS 1.2 are refused; the pair is reported
  unavailable otherwise. **weft-mtls** is the Weft pair on a control plane of its own where
  both sidecars get workload certificates from the control plane's CA (` + "`weft token create`" + `
  join tokens, ` + "`--root-cert --token-file`" + `, xDS over mTLS on the secure port) and auto mTLS
  makes the hop ISTIO_MUTUAL; the plain **weft** pair's sidecars have no identity, so its hop
  is plaintext. After a request, the server sidecar's ` + "`istio_requests_total{reporter=\"destination\"}`" + `
  must show only ` + "`connection_security_policy=\"mutual_tls\"`" + ` (weft-mtls) or only ` + "`\"none\"`" + `
  (weft). The "security" column of the topologies table says what was checked. All pairs keep
  connections alive, so the figures are mostly the per-request cost on established TLS
  connections; handshakes happen as pools grow (the max and 200-connection cells).
  **weft-authz** is the plain Weft pair with 10 AuthorizationPolicies (2 DENY, 8 ALLOW: paths,
  methods, headers, principals, request principals, IP blocks, ports, hosts) and a
  RequestAuthentication with an inline key set on the server side; the bench's GET / passes them
  all, so each request is evaluated against every policy. Before measuring, the harness checks
  they are enforced: /admin gets 403 and a token that does not verify gets 401.
`

// sourceName says where a control-plane run's config came from.
func sourceName(s string) string {
	switch s {
	case sourceKube:
		return "a kube-apiserver (Services, EndpointSlices)"
	case sourceDir, "":
		return "a watched directory (Services, WorkloadEntries)"
	}
	return s
}

// otherWork is the range over a scenario's measured cells of the cores
// other processes used while they ran.
func (r *report) otherWork(scenario string) (lo, hi float64, ok bool) {
	for _, c := range r.Cells {
		if c.Scenario != scenario || c.OtherCores == nil {
			continue
		}
		v := *c.OtherCores
		if !ok || v < lo {
			lo = v
		}
		if !ok || v > hi {
			hi = v
		}
		ok = true
	}
	return lo, hi, ok
}
