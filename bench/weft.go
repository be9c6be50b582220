package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Loopback addresses of the Weft topology (explicit mode: every workload
// and sidecar has a loopback IP of its own, so the default ports do not
// clash). 127.0.77.0/24 is kept for the harness.
const (
	backendIP       = "127.0.77.3" // the backend app (shared by all topologies)
	backendPort     = 8080
	cpIP            = "127.0.77.1"
	serverSidecarIP = "127.0.77.10"
	clientSidecarIP = "127.0.77.20"
	clientAppIP     = "127.0.77.21"
	idleSidecarIP   = "127.0.77.30"
	// The mTLS pair runs beside the plaintext one, on IPs of its own.
	mtlsServerIP    = "127.0.77.11"
	mtlsClientIP    = "127.0.77.22"
	mtlsClientAppIP = "127.0.77.23"
	// And the pair with authorization policies.
	authzServerIP    = "127.0.77.12"
	authzClientIP    = "127.0.77.24"
	authzClientAppIP = "127.0.77.25"
	// And the A/B twin of the plain pair (-alt-bin, -alt-env).
	altServerIP    = "127.0.77.13"
	altClientIP    = "127.0.77.26"
	altClientAppIP = "127.0.77.27"
	proxyPort      = 15080
	healthPort     = 15021
)

// weftBins locates bin/weft and bin/weft-proxy and checks that they have
// the commands the topology needs; the error says why Weft is skipped.
func weftBins(binDir string) (weft, proxy string, err error) {
	weft = filepath.Join(binDir, "weft")
	proxy = filepath.Join(binDir, "weft-proxy")
	for _, c := range [][]string{{weft, "control-plane", "config-dir"}, {proxy, "sidecar", "proxy-port"}} {
		if _, err := os.Stat(c[0]); err != nil {
			return "", "", fmt.Errorf("%s not built (make build)", c[0])
		}
		if out, err := execHelp(c[0], c[1], c[2]); err != nil {
			return "", "", fmt.Errorf("`%s %s` not implemented yet (%v: %s)", filepath.Base(c[0]), c[1], err, out)
		}
	}
	return weft, proxy, nil
}

// execHelp runs `bin cmd --help` and checks the help names flag (cobra
// prints the root help for unknown commands).
func execHelp(bin, cmd, flag string) (string, error) {
	out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
	if err == nil && !strings.Contains(string(out), flag) {
		err = fmt.Errorf("help does not mention %s", flag)
	}
	return firstLine(out), err
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// controlPlane is a running `weft control-plane`.
type controlPlane struct {
	proc       *proc
	configDir  string
	xds        string // plaintext xDS (15010's role)
	secure     string // CA and mTLS xDS (15012's role)
	monitoring string
}

// startControlPlane starts `weft control-plane` on a fresh config
// directory holding files (name → YAML) from the start.
func startControlPlane(ctx context.Context, weft, dir, label string, files map[string]string) (*controlPlane, error) {
	return startControlPlaneEnv(ctx, weft, dir, label, files, nil)
}

// startControlPlaneEnv is startControlPlane with extra environment.
func startControlPlaneEnv(ctx context.Context, weft, dir, label string, files map[string]string, env []string) (*controlPlane, error) {
	cfg := filepath.Join(dir, label+"-config")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		return nil, err
	}
	for name, y := range files {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(y), 0o644); err != nil {
			return nil, err
		}
	}
	xp, err := freePort(cpIP)
	if err != nil {
		return nil, err
	}
	mp, err := freePort(cpIP)
	if err != nil {
		return nil, err
	}
	sp, err := freePort(cpIP)
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{configDir: cfg, xds: net.JoinHostPort(cpIP, strconv.Itoa(xp)),
		secure: net.JoinHostPort(cpIP, strconv.Itoa(sp)), monitoring: net.JoinHostPort(cpIP, strconv.Itoa(mp))}
	cp.proc, err = start(dir, label, env, weft, "control-plane", "--config-dir", cfg,
		"--xds-address", cp.xds, "--secure-address", cp.secure, "--monitoring-address", cp.monitoring, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+cp.monitoring+"/healthz/ready", "", cp.proc, 20*time.Second); err != nil {
		cp.proc.stop()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return cp, nil
}

// write puts a config file into the watched directory atomically.
func (cp *controlPlane) write(name, yaml string) error {
	tmp := filepath.Join(cp.configDir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(cp.configDir, name))
}

// sidecar describes one weft-proxy in explicit mode.
type sidecar struct {
	name, ip, appIP string
	ports           string // node ports "http:8080:HTTP" ("" for a pure client)
	proxyPort       int
	// identity: get a workload certificate from the control plane's CA
	// with a join token (made by weft, `weft token create`) and speak xDS
	// over mutual TLS; auto mTLS then makes the pair's hop ISTIO_MUTUAL.
	identity bool
	weft     string   // bin/weft, for the token
	env      []string // added to the harness's environment
}

func startSidecar(ctx context.Context, proxyBin, dir string, cp *controlPlane, s sidecar) (*proc, error) {
	xds := cp.xds
	var idArgs []string
	if s.identity {
		root := filepath.Join(cpStateDir(cp.configDir), "ca", "root-cert.pem")
		tok := filepath.Join(dir, s.name+"-"+s.ip+".token")
		out, err := exec.Command(s.weft, "token", "create", "--config-dir", cp.configDir, "--namespace", "default",
			"--service-account", s.name, "--ttl", "24h", "-o", tok).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("weft token create: %v: %s", err, firstLine(out))
		}
		xds = cp.secure
		idArgs = []string{"--root-cert", root, "--token-file", tok}
	}
	args := []string{"sidecar", "--xds", xds, "--name", s.name, "--namespace", "default",
		"--service-account", s.name, "--labels", "app=" + s.name + ",version=v1", "--ip", s.ip,
		"--app-address", s.appIP, "--log-level", "warn"}
	args = append(args, idArgs...)
	if s.ports != "" {
		args = append(args, "--ports", s.ports)
	}
	if s.proxyPort != 0 {
		args = append(args, "--proxy-port", strconv.Itoa(s.proxyPort))
	}
	label := "weft-proxy-" + s.name
	if s.identity {
		label += "-mtls"
	}
	p, err := start(dir, label, s.env, proxyBin, args...)
	if err != nil {
		return nil, err
	}
	ready := fmt.Sprintf("http://%s/healthz/ready", net.JoinHostPort(s.ip, strconv.Itoa(healthPort)))
	if err := waitHTTP(ctx, ready, "", p, 30*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("weft-proxy %s: %w", s.name, err)
	}
	return p, nil
}

const serverService = `apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: default
spec:
  selector:
    app: server
  ports:
  - name: http
    port: 8080
    targetPort: 8080
`

// cpStateDir is the control plane's default state directory (as
// server.DefaultStateDir; the harness keeps to the CLI's contract).
func cpStateDir(configDir string) string { return filepath.Clean(configDir) + ".state" }

// weftVariant is one Weft pair of the bench.
type weftVariant struct {
	name string
	mtls bool // workload certificates; auto mTLS makes the hop ISTIO_MUTUAL
	// authz puts 10 AuthorizationPolicies and a RequestAuthentication on
	// the server side (issue: policy cost beside the plain pair).
	authz bool
	// alt is the plain pair again, with weft-proxy from -alt-bin and the
	// environment -alt-env: an A/B comparison interleaved in one run.
	alt bool
	env []string // for its proxies, beside the harness's environment
}

var weftVariants = []weftVariant{{name: "weft"}, {name: "weft-mtls", mtls: true}, {name: "weft-authz", authz: true}, {name: "weft-alt", alt: true}}

// startWeft runs a control plane and a sidecar pair: the client sends to
// the client sidecar's explicit proxy port with Host: server:8080; that
// sidecar routes to the server sidecar's inbound listener (server IP:8080),
// which forwards to the backend on its app address. With mtls both
// sidecars hold workload certificates from the control plane's CA (join
// tokens, xDS over mTLS on the secure port) and auto mTLS makes the hop
// between them ISTIO_MUTUAL; without, they have no identity and the hop is
// plaintext. Either way the server sidecar's metrics must say so.
func startWeft(ctx context.Context, weft, proxyBin, dir string, v weftVariant) (*topology, error) {
	name, mtls := v.name, v.mtls
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{"server.yaml": serverService}
	if v.authz {
		pol, err := authzPolicies()
		if err != nil {
			return nil, err
		}
		files["authz.yaml"] = pol
	}
	cp, err := startControlPlane(ctx, weft, sub, "weft-control-plane", files)
	if err != nil {
		return nil, err
	}
	srvIP, cliIP, cliApp := serverSidecarIP, clientSidecarIP, clientAppIP
	hop, policy := "h1 (plaintext, no identities)", "none"
	if mtls {
		srvIP, cliIP, cliApp = mtlsServerIP, mtlsClientIP, mtlsClientAppIP
		hop, policy = "h1 over Istio mutual TLS 1.3 (auto mTLS, SPIFFE certs from Weft's CA, P-256)", "mutual_tls"
	}
	if v.authz {
		srvIP, cliIP, cliApp = authzServerIP, authzClientIP, authzClientAppIP
		hop = "h1 (plaintext; the server sidecar enforces 10 AuthorizationPolicies and a RequestAuthentication)"
	}
	if v.alt {
		srvIP, cliIP, cliApp = altServerIP, altClientIP, altClientAppIP
		hop = fmt.Sprintf("h1 (plaintext, no identities; weft-proxy %s, environment %q)", proxyBin, v.env)
	}
	t := &topology{Name: name, Host: fmt.Sprintf("server:%d", backendPort),
		Hops: "client →h1/h2c→ weft-proxy (explicit proxy port) →" + hop + "→ weft-proxy (inbound) →h1→ backend"}
	t.stop = cp.proc.stop
	srv, err := startSidecar(ctx, proxyBin, sub, cp, sidecar{name: "server", ip: srvIP, appIP: backendIP,
		ports: fmt.Sprintf("http:%d:HTTP", backendPort), identity: mtls, weft: weft, env: v.env})
	if err != nil {
		t.close()
		return nil, err
	}
	cli, err := startSidecar(ctx, proxyBin, sub, cp, sidecar{name: "client", ip: cliIP, appIP: cliApp, proxyPort: proxyPort, identity: mtls, weft: weft, env: v.env})
	if err != nil {
		srv.stop()
		t.close()
		return nil, err
	}
	t.Procs = []*proc{cli, srv}
	t.URL = fmt.Sprintf("http://%s/", net.JoinHostPort(cliIP, strconv.Itoa(proxyPort)))
	t.H2CURL = t.URL
	if err := waitHTTP(ctx, t.URL, t.Host, cli, 30*time.Second); err != nil {
		t.close()
		return nil, fmt.Errorf("request through the sidecar pair: %w", err)
	}
	if t.Verified, err = checkWeftPolicy(ctx, fmt.Sprintf("http://%s/stats/prometheus", net.JoinHostPort(srvIP, "15000")), policy, 15*time.Second); err != nil {
		t.close()
		return nil, err
	}
	if v.authz {
		got, err := checkAuthz(ctx, t)
		if err != nil {
			t.close()
			return nil, err
		}
		t.Verified += "; " + got
	}
	return t, nil
}

// authzPolicies is the server side's security config: a RequestAuthentication
// with an inline key set (requests without a token pass authentication, as
// in Istio) and 10 AuthorizationPolicies (2 DENY, 8 ALLOW) that the bench's
// GET / keeps passing, so every request is evaluated against all of them.
func authzPolicies() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return "", err
	}
	pt := pub.Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"bench","x":%q,"y":%q}]}`, b64(pt[1:33]), b64(pt[33:65]))
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bench-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  jwtRules:
  - issuer: bench@weft.example
    jwks: '%s'
`, jwks)
	rules := []struct{ name, action, rule string }{
		{"deny-admin", "DENY", `[{to: [{operation: {paths: ["/admin*", "/debug/*"]}}]}]`},
		{"deny-blocked", "DENY", `[{when: [{key: "request.headers[x-block]", values: ["yes"]}]}]`},
		{"allow-reads", "ALLOW", `[{to: [{operation: {methods: ["GET", "HEAD"], paths: ["/", "/echo*", "/static/*"]}}]}]`},
		{"allow-api-writes", "ALLOW", `[{to: [{operation: {methods: ["POST", "PUT"], paths: ["/api/v1/*"]}}]}]`},
		{"allow-tenants", "ALLOW", `[{when: [{key: "request.headers[x-tenant]", values: ["a", "b", "c"]}]}]`},
		{"allow-jwt", "ALLOW", `[{from: [{source: {requestPrincipals: ["bench@weft.example/*"]}}]}]`},
		{"allow-mesh", "ALLOW", `[{from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]}]`},
		{"allow-ops-net", "ALLOW", `[{from: [{source: {ipBlocks: ["10.0.0.0/8"]}}], to: [{operation: {ports: ["8080"]}}]}]`},
		{"allow-health", "ALLOW", `[{to: [{operation: {paths: ["/healthz", "/ready"], methods: ["GET"]}}]}]`},
		{"allow-hosts", "ALLOW", `[{to: [{operation: {hosts: ["server.example.com"], notMethods: ["DELETE"]}}]}]`},
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: default}\nspec:\n  selector: {matchLabels: {app: server}}\n  action: %s\n  rules: %s\n", r.name, r.action, r.rule)
	}
	return b.String(), nil
}

// checkAuthz proves the server sidecar enforces the policies: a path a DENY
// names gets 403, a token that does not verify gets 401, and GET / (the
// bench's request) is still served.
func checkAuthz(ctx context.Context, t *topology) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	status := func(path string, hdr map[string]string) int {
		req, err := http.NewRequestWithContext(ctx, "GET", t.URL+path, nil)
		if err != nil {
			return 0
		}
		req.Host = t.Host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	last := ""
	for {
		admin, bad, ok := status("admin", nil), status("", map[string]string{"Authorization": "Bearer not.a.jwt"}), status("", nil)
		if admin == 403 && bad == 401 && ok == 200 {
			return "10 AuthorizationPolicies enforced (/admin 403, a bad token 401, GET / 200)", nil
		}
		last = fmt.Sprintf("/admin %d, bad token %d, GET / %d", admin, bad, ok)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("authorization not enforced on the server sidecar: %s", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkWeftPolicy polls the server sidecar's metrics until its
// server-side (reporter="destination") request series show
// connection_security_policy=want and no other policy.
func checkWeftPolicy(ctx context.Context, url, want string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no answer"
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen := map[string]bool{}
			for _, line := range strings.Split(string(b), "\n") {
				if !strings.HasPrefix(line, "istio_requests_total{") || !strings.Contains(line, `reporter="destination"`) {
					continue
				}
				if _, rest, ok := strings.Cut(line, `connection_security_policy="`); ok {
					v, _, _ := strings.Cut(rest, `"`)
					seen[v] = true
				}
			}
			if seen[want] && len(seen) == 1 {
				return fmt.Sprintf(`server sidecar's istio_requests_total{reporter="destination"} has connection_security_policy="%s" only`, want), nil
			}
			if len(seen) > 0 {
				last = fmt.Sprintf("connection_security_policy values %v, want only %q", keysOf(seen), want)
				if !seen[want] || len(seen) > 1 {
					// Wrong security on the hop: no point waiting.
					return "", fmt.Errorf("server sidecar's metrics: %s", last)
				}
			} else {
				last = "no server-side istio_requests_total series yet"
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("server sidecar's metrics (%s): %s", url, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func keysOf(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// servicesYAML generates n Services, each with one WorkloadEntry endpoint
// (addresses from 198.18.0.0/16, never routed), like a mid-size mesh.
func servicesYAML(prefix string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%04d", prefix, i)
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: default
spec:
  selector:
    app: %[1]s
  ports:
  - name: http
    port: 8080
    targetPort: 8080
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %[1]s
  namespace: default
spec:
  address: 198.18.%[2]d.%[3]d
  labels:
    app: %[1]s
---
`, name, 1+i/250, 1+i%250)
	}
	return b.String()
}

// proxyStatus is the part of the control plane's /api/v1/proxies answer
// the harness reads.
type proxyStatus struct {
	ID    string `json:"id"`
	Types map[string]struct {
		State string `json:"state"`
	} `json:"types"`
}

// waitSynced polls the control plane until the proxy at ip is in sync.
func waitSynced(ctx context.Context, cp *controlPlane, ip string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		resp, err := http.Get("http://" + cp.monitoring + "/api/v1/proxies")
		if err == nil {
			var ps []proxyStatus
			err = json.NewDecoder(resp.Body).Decode(&ps)
			resp.Body.Close()
			for _, p := range ps {
				if !strings.Contains(p.ID, "~"+ip+"~") || len(p.Types) == 0 {
					continue
				}
				// Every type the control plane sent must be ACKed at its
				// latest version; CDS and LDS must have been sent. "NOT
				// SENT" is fine for the rest (e.g. SDS without secrets).
				synced := p.Types["CDS"].State == "SYNCED" && p.Types["LDS"].State == "SYNCED"
				for t, st := range p.Types {
					if st.State != "SYNCED" && st.State != "NOT SENT" {
						synced = false
						last = t + "=" + st.State
					}
				}
				if synced {
					return nil
				}
				last = fmt.Sprintf("%v", p.Types)
			}
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy %s not SYNCED after %v (%s)", ip, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settledRSS samples VmRSS until three samples 250 ms apart agree within
// 2 % (the Go runtime has finished growing), or 10 s pass.
func settledRSS(ctx context.Context, p *proc) int64 {
	var prev []int64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		v := p.memKB("VmRSS")
		prev = append(prev, v)
		if n := len(prev); n >= 3 {
			lo, hi := prev[n-3], prev[n-3]
			for _, x := range prev[n-3:] {
				lo, hi = min(lo, x), max(hi, x)
			}
			if float64(hi-lo) <= 0.02*float64(hi) {
				return v
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(prev) == 0 {
		return 0
	}
	return prev[len(prev)-1]
}

// idleResult is weft-proxy's memory with nothing to do.
type idleResult struct {
	Services int `json:"services"`
	// Clusters is how many outbound clusters of the generated services
	// the proxy's admin /clusters showed: proof it holds the config.
	Clusters int    `json:"clusters_seen"`
	RSSKB    int64  `json:"rss_kb"`
	AnonKB   int64  `json:"anon_kb"` // RssAnon when RSS settled
	HWMKB    int64  `json:"peak_rss_kb"`
	Error    string `json:"error,omitempty"`
}

// measureIdle starts a control plane with n services and one client
// sidecar, waits until it is SYNCED and its RSS settles.
func measureIdle(ctx context.Context, weft, proxyBin, dir string, n int) idleResult {
	r := idleResult{Services: n}
	sub := filepath.Join(dir, fmt.Sprintf("idle-%d", n))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	files := map[string]string{}
	if n > 0 {
		files["services.yaml"] = servicesYAML("svc", n)
	}
	cp, err := startControlPlane(ctx, weft, sub, "control-plane", files)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cp.proc.stop()
	p, err := startSidecar(ctx, proxyBin, sub, cp, sidecar{name: "idle", ip: idleSidecarIP, appIP: clientAppIP, proxyPort: proxyPort})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer p.stop()
	if err := waitSynced(ctx, cp, idleSidecarIP, 60*time.Second); err != nil {
		r.Error = err.Error()
		return r
	}
	r.RSSKB = settledRSS(ctx, p)
	r.AnonKB = p.memKB("RssAnon")
	r.HWMKB = p.memKB("VmHWM")
	r.Clusters, err = countClusters(fmt.Sprintf("http://%s:15000/clusters", idleSidecarIP), "svc-")
	if err != nil {
		r.Error = "admin /clusters: " + err.Error()
	} else if r.Clusters < n {
		r.Error = fmt.Sprintf("proxy shows %d of %d services' clusters", r.Clusters, n)
	}
	return r
}

// countClusters counts distinct outbound clusters whose service name
// starts with prefix in a proxy's /clusters listing (Envoy's text format,
// one "name::field::value" per line).
func countClusters(url, prefix string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, firstLine(b))
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		name, _, _ := strings.Cut(line, "::")
		if i := strings.LastIndex(name, "|"); i >= 0 && strings.HasPrefix(name, "outbound|") && strings.HasPrefix(name[i+1:], prefix) {
			seen[name] = true
		}
	}
	return len(seen), nil
}
