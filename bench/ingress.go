package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fortio.org/fortio/fhttp"
)

// The HTTPS ingress part (issue 12): one proxy terminates TLS 1.3 (ECDSA
// P-256 server certificate) from the client and forwards plain HTTP/1.1
// with keep-alive to the backend — Weft's gateway (a Gateway server with
// tls.mode SIMPLE and a credentialName Secret, served over SDS to a router
// that proved its identity) beside nginx and HAProxy configured the same
// way. Each is loaded at a fixed rate twice: with keep-alive (the
// per-request cost of TLS records on an open connection) and with a new
// connection per request (Go's client keeps no session cache, so every
// request pays a full handshake: the handshake cost).

const (
	ingressWeftIP = "127.0.77.40" // Weft's router
	ingressHost   = pairSNI       // the name in the bench certificate
)

// ingressTarget is one terminating proxy: https://server:PORT/
// with the name resolved to ip (fortio's -resolve, curl's --resolve).
type ingressTarget struct {
	url, ip string
	procs   []*proc
	stop    func()
}

func (t *ingressTarget) close() {
	for _, p := range t.procs {
		p.stop()
	}
	if t.stop != nil {
		t.stop()
	}
}

// ingressCell is one ingress measurement.
type ingressCell struct {
	Topology string `json:"topology"`
	Mode     string `json:"mode"` // keep-alive or new-connection
	cell
}

// ingressModes are the two loads, at the latency cells' rate.
func ingressModes(o *options) []struct {
	name      string
	keepAlive bool
} {
	return []struct {
		name      string
		keepAlive bool
	}{{"keep-alive", true}, {"new-connection", false}}
}

// runIngress starts the three terminating proxies one at a time, checks
// each (the right certificate for the SNI, TLS 1.2 refused, the backend's
// answer) and loads it; it returns the cells and the topologies' notes.
func runIngress(ctx context.Context, o *options, log *slog.Logger, dir, backendAddr, weftBin, proxyBin string) ([]*ingressCell, []topoInfo) {
	pki, err := newPairPKI(filepath.Join(dir, "ingress-pki"))
	if err != nil {
		return nil, []topoInfo{{Name: "https-ingress", Reason: err.Error()}}
	}
	starters := []struct {
		name string
		hops string
		mk   func() (*ingressTarget, error)
	}{
		{"weft-gateway-tls", "client →h1 over TLS 1.3 (SNI " + ingressHost + ")→ weft-proxy router (Gateway SIMPLE, credentialName over SDS) →h1 keep-alive→ backend",
			func() (*ingressTarget, error) { return startWeftIngress(ctx, weftBin, proxyBin, dir, backendAddr, pki) }},
		{"nginx-ingress-tls", "client →h1 over TLS 1.3→ nginx (2 workers, session cache) →h1 keep-alive→ backend",
			func() (*ingressTarget, error) { return startPeerIngress(ctx, dir, "nginx", backendAddr, pki) }},
		{"haproxy-ingress-tls", "client →h1 over TLS 1.3→ haproxy (2 threads) →h1 keep-alive→ backend",
			func() (*ingressTarget, error) { return startPeerIngress(ctx, dir, "haproxy", backendAddr, pki) }},
	}
	var cells []*ingressCell
	var infos []topoInfo
	for _, s := range starters {
		if ctx.Err() != nil {
			break
		}
		info := topoInfo{Name: s.name, Hops: s.hops}
		t, err := s.mk()
		if err != nil {
			info.Reason = err.Error()
			log.Warn("ingress topology not available", "topology", s.name, "error", err)
			infos = append(infos, info)
			continue
		}
		if info.Verified, err = checkIngressTLS(ctx, t, pki.CA, 15*time.Second); err != nil {
			t.close()
			info.Reason = err.Error()
			infos = append(infos, info)
			continue
		}
		info.Available = true
		for round := 0; round < o.rounds; round++ {
			for _, m := range ingressModes(o) {
				sc := scenario{Name: "https-ingress-" + m.name, QPS: o.qps, Conns: 16, Duration: o.latency, Key: "p99"}
				if o.warmup > 0 {
					runTLSLoad(t, pki.CA, sc, m.keepAlive, o.warmup)
				}
				before := map[string]float64{}
				for _, p := range t.procs {
					before[p.name] = p.cpuSeconds()
				}
				c, err := runTLSLoad(t, pki.CA, sc, m.keepAlive, sc.Duration)
				if err != nil {
					c = &cell{Skipped: err.Error()}
				}
				c.Scenario, c.Topology, c.Round = sc.Name, s.name, round
				total := 0.0
				c.CPUSec = map[string]float64{}
				for _, p := range t.procs {
					d := p.cpuSeconds() - before[p.name]
					c.CPUSec[p.name] = d
					total += d
				}
				if c.Requests > 0 {
					c.CPUPer1k = total / (float64(c.Requests) / 1000)
				}
				cells = append(cells, &ingressCell{Topology: s.name, Mode: m.name, cell: *c})
				log.Info("ingress cell", "topology", s.name, "mode", m.name, "round", round, "qps", fmt.Sprintf("%.0f", c.QPS),
					"p50_ms", fmt.Sprintf("%.3f", c.P50Ms), "p99_ms", fmt.Sprintf("%.3f", c.P99Ms), "cpu_s_per_1k", fmt.Sprintf("%.3f", c.CPUPer1k), "errors", c.Errors)
			}
		}
		info.PeakRSSKB = map[string]int64{}
		for _, p := range t.procs {
			info.PeakRSSKB[p.name] = p.memKB("VmHWM")
		}
		t.close()
		infos = append(infos, info)
	}
	return cells, infos
}

// runTLSLoad is runLoad over https, trusting the bench CA, with or without
// keep-alive.
func runTLSLoad(t *ingressTarget, caFile string, s scenario, keepAlive bool, dur time.Duration) (*cell, error) {
	return runLoadWith(t.url, "", s, dur, func(h *fhttp.HTTPOptions) {
		h.TLSOptions.CACert = caFile
		h.Resolve = t.ip
		h.DisableKeepAlive = !keepAlive
	})
}

// checkIngressTLS proves the terminating proxy serves the bench
// certificate for the SNI, answers with the backend's 200, and refuses
// TLS 1.2.
func checkIngressTLS(ctx context.Context, t *ingressTarget, caFile string, timeout time.Duration) (string, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	get := func(cfg *tls.Config) (*http.Response, error) {
		tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, net.JoinHostPort(t.ip, port))
			}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
		resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := get(&tls.Config{RootCAs: pool, ServerName: ingressHost, MinVersion: tls.VersionTLS13})
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("status %s", resp.Status)
			}
			return "", fmt.Errorf("https through the ingress: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp, err := get(&tls.Config{RootCAs: pool, ServerName: ingressHost, MaxVersion: tls.VersionTLS12}); err == nil {
		return "", fmt.Errorf("TLS 1.2 accepted (%s)", resp.Status)
	}
	return "TLS 1.3 with the bench certificate for SNI " + ingressHost + " verified; TLS 1.2 refused", nil
}

// startPeerIngress runs nginx or HAProxy terminating TLS 1.3 on a free
// port, forwarding to the backend with keep-alive.
func startPeerIngress(ctx context.Context, dir, kind, backend string, pki *pairPKI) (*ingressTarget, error) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	sub := filepath.Join(dir, kind+"-ingress")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	var conf, bin string
	var args []string
	switch kind {
	case "nginx":
		bin = nginxBin
		conf = nginxConf(sub, backend, fmt.Sprintf(`    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:ingress:10m;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
    }
`, port, pki.ServerCert, pki.ServerKey))
		args = []string{"-p", sub, "-c", filepath.Join(sub, "nginx.conf"), "-e", "stderr"}
		if err := os.WriteFile(filepath.Join(sub, "nginx.conf"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
	case "haproxy":
		bin = haproxyBin
		conf = haproxyConf(fmt.Sprintf("  bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.3\n", port, pki.ServerBundle), backend)
		args = []string{"-f", filepath.Join(sub, "haproxy.cfg"), "-db"}
		if err := os.WriteFile(filepath.Join(sub, "haproxy.cfg"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("binary missing: %w", err)
	}
	p, err := start(sub, kind+"-ingress-tls", nil, bin, args...)
	if err != nil {
		return nil, err
	}
	return &ingressTarget{url: fmt.Sprintf("https://%s:%d/", ingressHost, port), ip: "127.0.0.1", procs: []*proc{p}}, nil
}

// startWeftIngress runs a control plane whose config routes Gateway
// server 8443 (SIMPLE, credentialName bench-cred in default, any host) to
// the backend (a STATIC ServiceEntry), and a router
// holding a workload certificate (credentials follow the verified
// identity, so a router without one would get none).
func startWeftIngress(ctx context.Context, weft, proxyBin, dir, backend string, pki *pairPKI) (*ingressTarget, error) {
	if weft == "" {
		return nil, fmt.Errorf("weft not built")
	}
	sub := filepath.Join(dir, "weft-ingress")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(pki.ServerCert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(pki.ServerKey)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(backend)
	b64 := base64.StdEncoding.EncodeToString
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: bench-cred, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.bench]
  location: MESH_INTERNAL
  ports: [{number: %s, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: %s}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: bench-cred, minProtocolVersion: TLSV1_3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bench]
  http:
  - route: [{destination: {host: backend.bench, port: {number: %s}}}]
`, b64(certPEM), b64(keyPEM), port, host, port)
	cp, err := startControlPlane(ctx, weft, sub, "weft-ingress-control-plane", map[string]string{"bench.yaml": cfg})
	if err != nil {
		return nil, err
	}
	root := filepath.Join(cpStateDir(cp.configDir), "ca", "root-cert.pem")
	tok := filepath.Join(sub, "router.token")
	if out, err := exec.Command(weft, "token", "create", "--config-dir", cp.configDir, "--namespace", "default",
		"--service-account", "ingressgateway", "--ttl", "24h", "-o", tok).CombinedOutput(); err != nil {
		cp.proc.stop()
		return nil, fmt.Errorf("weft token create: %v: %s", err, firstLine(out))
	}
	p, err := start(sub, "weft-proxy-router", nil, proxyBin, "router", "--xds", cp.secure, "--root-cert", root, "--token-file", tok,
		"--name", "ingressgateway", "--namespace", "default", "--service-account", "ingressgateway",
		"--labels", "istio=ingressgateway,app=ingressgateway", "--ip", ingressWeftIP, "--log-level", "warn")
	if err != nil {
		cp.proc.stop()
		return nil, err
	}
	t := &ingressTarget{url: fmt.Sprintf("https://%s:8443/", ingressHost), ip: ingressWeftIP, procs: []*proc{p}, stop: cp.proc.stop}
	ready := fmt.Sprintf("http://%s/healthz/ready", net.JoinHostPort(ingressWeftIP, strconv.Itoa(healthPort)))
	if err := waitHTTP(ctx, ready, "", p, 30*time.Second); err != nil {
		t.close()
		return nil, fmt.Errorf("weft-proxy router: %w", err)
	}
	return t, nil
}

// runIngress runs the part into the report.
func (r *report) runIngress(ctx context.Context, o *options, log *slog.Logger, dir, backendAddr, weftBin, proxyBin string, weftErr error) {
	if weftErr != nil {
		weftBin = ""
	}
	r.Ingress, r.IngressTopos = runIngress(ctx, o, log, dir, backendAddr, weftBin, proxyBin)
}

// ingressMarkdown renders the part: per topology and mode, the rounds'
// mean rate, latency and proxy CPU per 1,000 requests; the handshake cost
// is the new-connection CPU minus the keep-alive CPU.
func (r *report) ingressMarkdown(p func(string, ...any)) {
	if len(r.IngressTopos) == 0 {
		return
	}
	p("## HTTPS ingress — TLS 1.3 terminated at the proxy, %.0f QPS, 16 connections\n\n", r.Settings["qps"])
	p("| topology | path | status |\n|---|---|---|\n")
	for _, t := range r.IngressTopos {
		st := "available: " + t.Verified
		if !t.Available {
			st = "not available: " + t.Reason
		}
		p("| %s | %s | %s |\n", t.Name, t.Hops, st)
	}
	p("\n| topology | mode | QPS | p50 ms | p99 ms | errors | proxy CPU s / 1k req |\n|---|---|---|---|---|---|---|\n")
	type agg struct {
		n                    int
		qps, p50, p99, cpu1k float64
		errs                 int64
	}
	aggs := map[string]*agg{}
	var order []string
	for _, c := range r.Ingress {
		if c.Skipped != "" {
			continue
		}
		k := c.Topology + "|" + c.Mode
		a := aggs[k]
		if a == nil {
			a = &agg{}
			aggs[k] = a
			order = append(order, k)
		}
		a.n++
		a.qps += c.QPS
		a.p50 += c.P50Ms
		a.p99 += c.P99Ms
		a.cpu1k += c.CPUPer1k
		a.errs += c.Errors
	}
	for _, k := range order {
		a := aggs[k]
		n := float64(a.n)
		topo, mode, _ := strings.Cut(k, "|")
		p("| %s | %s | %.0f | %.3f | %.3f | %d | %.3f |\n", topo, mode, a.qps/n, a.p50/n, a.p99/n, a.errs, a.cpu1k/n)
	}
	p("\nHandshake cost per connection (proxy CPU ms) = new-connection CPU s/1k − keep-alive CPU s/1k:\n\n")
	for _, t := range r.IngressTopos {
		ka, nc := aggs[t.Name+"|keep-alive"], aggs[t.Name+"|new-connection"]
		if ka == nil || nc == nil {
			continue
		}
		p("- %s: %.3f ms\n", t.Name, nc.cpu1k/float64(nc.n)-ka.cpu1k/float64(ka.n))
	}
	p("\n")
}
