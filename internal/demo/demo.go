// Package demo runs a whole Weft mesh on one machine: the control plane on a
// config directory seeded from the shipped examples, every sample app with
// its own sidecar, and the ingress and egress gateways. `weft demo` and the
// end-to-end tests both use it, so what the tests prove is what users run.
//
// Explicit mode (no root): each workload gets a loopback IP of its own (the
// "pod IP", 127.0.10.N) where its sidecar listens (inbound ports, the HTTP
// proxy port, admin/health/stats), and its app listens on another loopback IP
// (127.0.11.N). Apps reach services through HTTP_PROXY=http://POD_IP:15080.
package demo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/node"
)

// Options configure a demo mesh. Zero values pick the defaults below.
type Options struct {
	ConfigDir string // control-plane config dir; "" = a fresh temp dir
	LogDir    string // where each process logs; "" = ConfigDir/../logs
	Seed      fs.FS  // files copied into ConfigDir (examples/ minus tasks and invalid)
	WeftBin   string // path of the weft binary (control plane, samples)
	ProxyBin  string // path of weft-proxy
	// SecureAddr is the control plane's xDS over mutual TLS and CA
	// (default 127.0.0.1:15012). Every proxy gets its certificate there
	// with a join token the demo mints for its workload.
	SecureAddr string
	// XDSAddr, when set, also serves plaintext xDS (development; no proxy
	// of the demo uses it). Default: off.
	XDSAddr     string
	MonitorAddr string // default 127.0.0.1:15014 (weft apply/get/delete talk to it)
	// ControlPlaneEnv is added to the control plane's environment (istiod's
	// feature flags such as ENABLE_TLS_ON_SIDECAR_INGRESS=true).
	ControlPlaneEnv []string
	IngressIP       string // default 127.0.0.1: where the ingress gateway listens
	// PodNet and AppNet are the first three octets of the loopback ranges
	// for sidecars and apps (defaults 127.0.10 and 127.0.11).
	PodNet, AppNet string
	// PortMap maps gateway listener ports to host ports ("8080=18080"), for
	// running where 8080/8443 are taken.
	PortMap map[uint32]uint32
	// Workloads to start; nil = DefaultWorkloads().
	Workloads []*Workload
	// External starts the stand-in external site (egress tasks) when true.
	External bool
	// Capture runs each workload in a network namespace of its own with
	// iptables capture (root, Linux). CaptureID (short, unique per running
	// mesh) names its bridge and namespaces; CaptureNet (1-250) is the third
	// octet of its 198.18/198.19 ranges.
	Capture    bool
	CaptureID  string
	CaptureNet int
	Log        *slog.Logger
	// Report is told when a process crashes and is restarted (the demo
	// supervises its processes); default: Log at warning level.
	Report func(msg string)
}

// Workload is one app instance with its sidecar (or a gateway: Router).
type Workload struct {
	Name           string // e.g. reviews-v2
	Namespace      string
	ServiceAccount string
	Labels         map[string]string
	Ports          []node.Port
	// Sample is the `weft sample` invocation (without --listen); nil = no app.
	Sample []string
	Router bool // a gateway (weft-proxy router) instead of a sidecar
	// Locality is the proxy's region/zone/subzone (weft-proxy --locality).
	Locality string

	Netns     string // capture mode: the workload's network namespace
	IP        string // pod IP: the sidecar's address
	AppIP     string // where the app listens
	ProxyPort uint32 // explicit HTTP proxy port on IP (0 for routers)
	AdminPort uint32
}

// ProxyURL is the HTTP proxy clients of this workload use.
func (w *Workload) ProxyURL() string {
	return fmt.Sprintf("http://%s", net.JoinHostPort(w.IP, strconv.Itoa(int(w.ProxyPort))))
}

// AdminURL is the sidecar's admin endpoint.
func (w *Workload) AdminURL() string {
	return fmt.Sprintf("http://%s", net.JoinHostPort(w.IP, strconv.Itoa(int(w.AdminPort))))
}

func port(name string, n uint32, proto string) node.Port {
	return node.Port{Name: name, Port: n, Protocol: proto}
}

func labels(app, version string) map[string]string {
	l := map[string]string{"app": app}
	if version != "" {
		l["version"] = version
	}
	return l
}

// DefaultWorkloads is Bookinfo, httpbin, tcp-echo v1/v2, a curl client, and
// the ingress and egress gateways, with Istio's names, labels and accounts.
func DefaultWorkloads() []*Workload {
	http9080 := []node.Port{port("http", 9080, "HTTP")}
	ws := []*Workload{
		{Name: "productpage-v1", ServiceAccount: "bookinfo-productpage", Labels: labels("productpage", "v1"), Ports: http9080, Sample: []string{"productpage"}},
		{Name: "details-v1", ServiceAccount: "bookinfo-details", Labels: labels("details", "v1"), Ports: http9080, Sample: []string{"details"}},
		{Name: "reviews-v1", ServiceAccount: "bookinfo-reviews", Labels: labels("reviews", "v1"), Ports: http9080, Sample: []string{"reviews", "--version", "v1"}},
		{Name: "reviews-v2", ServiceAccount: "bookinfo-reviews", Labels: labels("reviews", "v2"), Ports: http9080, Sample: []string{"reviews", "--version", "v2"}},
		{Name: "reviews-v3", ServiceAccount: "bookinfo-reviews", Labels: labels("reviews", "v3"), Ports: http9080, Sample: []string{"reviews", "--version", "v3"}},
		{Name: "ratings-v1", ServiceAccount: "bookinfo-ratings", Labels: labels("ratings", "v1"), Ports: http9080, Sample: []string{"ratings"}},
		{Name: "httpbin-v1", ServiceAccount: "httpbin", Labels: labels("httpbin", "v1"), Ports: []node.Port{port("http", 8080, "HTTP")}, Sample: []string{"httpbin", "--version", "v1"}},
		{Name: "tcp-echo-v1", ServiceAccount: "default", Labels: labels("tcp-echo", "v1"), Ports: []node.Port{port("tcp", 9000, "TCP"), port("tcp-other", 9001, "TCP")}, Sample: []string{"tcp-echo", "--prefix", "one"}},
		{Name: "tcp-echo-v2", ServiceAccount: "default", Labels: labels("tcp-echo", "v2"), Ports: []node.Port{port("tcp", 9000, "TCP"), port("tcp-other", 9001, "TCP")}, Sample: []string{"tcp-echo", "--prefix", "two"}},
		{Name: "curl", ServiceAccount: "curl", Labels: labels("curl", "")},
		{Name: "istio-ingressgateway", Namespace: "istio-system", ServiceAccount: "istio-ingressgateway-service-account", Router: true,
			Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}},
		{Name: "istio-egressgateway", Namespace: "istio-system", ServiceAccount: "istio-egressgateway-service-account", Router: true,
			Labels: map[string]string{"istio": "egressgateway", "app": "istio-egressgateway"}},
	}
	return ws
}

// Mesh is a running demo.
type Mesh struct {
	opts      Options
	procs     group
	mu        sync.Mutex
	workloads map[string]*Workload
	nextIP    int
	External  *External
	capture   *capture
	nsCount   int
}

// External is the stand-in external world for egress tasks: one site with
// its own CA answering several names (edition.cnn.com, the wikipedia.org
// names of "Egress using Wildcard Hosts"), and a site that requires client
// certificates (the mutual part of "Egress Gateways with TLS Origination").
type External struct {
	Host   string // edition.cnn.com
	IP     string // loopback IP it answers on (ports 80 and 443)
	CAFile string
	// Names maps every name the sites answer to its IP; proxies resolve
	// them so (--dns-override). en/de.wikipedia.org share one IP and
	// www.wikipedia.org has its own, so a test can tell where a
	// connection went (the page names the address that served it).
	Names map[string]string
	// Mutual is the site that requires client certificates.
	Mutual *MutualSite
}

// MutualSite is an external HTTPS site that requires a client certificate
// from its own CA; the demo writes one for the egress gateway's Secret.
type MutualSite struct {
	Host       string // my-nginx.mesh-external.svc.cluster.local
	IP         string // port 443
	CAFile     string // the site's CA, which also issued the client certificate
	ClientCert string
	ClientKey  string
}

func (o *Options) defaults() error {
	if o.MonitorAddr == "" {
		o.MonitorAddr = "127.0.0.1:15014"
	}
	if o.SecureAddr == "" {
		o.SecureAddr = "127.0.0.1:15012"
	}
	if o.IngressIP == "" {
		o.IngressIP = "127.0.0.1"
	}
	if o.PodNet == "" {
		o.PodNet = "127.0.10"
	}
	if o.AppNet == "" {
		o.AppNet = "127.0.11"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ConfigDir == "" {
		d, err := os.MkdirTemp("", "weft-demo-")
		if err != nil {
			return err
		}
		o.ConfigDir = filepath.Join(d, "config")
	}
	if o.LogDir == "" {
		o.LogDir = filepath.Join(filepath.Dir(o.ConfigDir), "logs")
	}
	if o.Workloads == nil {
		o.Workloads = DefaultWorkloads()
	}
	if o.WeftBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.WeftBin = exe
	}
	if o.ProxyBin == "" {
		o.ProxyBin = filepath.Join(filepath.Dir(o.WeftBin), "weft-proxy")
	}
	if _, err := os.Stat(o.ProxyBin); err != nil {
		return fmt.Errorf("weft-proxy not found next to weft (%s): build it with `make build`", o.ProxyBin)
	}
	return nil
}

// Start brings the mesh up and returns when every proxy is ready.
func Start(ctx context.Context, opts Options) (*Mesh, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	m := &Mesh{opts: opts, workloads: map[string]*Workload{}, nextIP: 1}
	m.procs.log = opts.Log
	m.procs.report = opts.Report
	if m.procs.report == nil {
		m.procs.report = func(msg string) { opts.Log.Warn(msg) }
	}
	ok := false
	defer func() {
		if !ok {
			m.Stop()
		}
	}()
	for _, d := range []string{opts.ConfigDir, opts.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if opts.Seed != nil {
		if err := seed(opts.Seed, opts.ConfigDir); err != nil {
			return nil, fmt.Errorf("seeding %s: %w", opts.ConfigDir, err)
		}
	}
	if opts.Capture {
		if opts.CaptureID == "" {
			opts.CaptureID = "demo"
		}
		if opts.CaptureNet == 0 {
			opts.CaptureNet = 1
		}
		c, err := newCapture(opts.CaptureID, opts.CaptureNet)
		if err != nil {
			return nil, err
		}
		m.capture = c
		// Proxies in namespaces reach the control plane over the bridge.
		_, p, err := net.SplitHostPort(opts.SecureAddr)
		if err != nil {
			return nil, fmt.Errorf("secure address %q: %w", opts.SecureAddr, err)
		}
		opts.SecureAddr = net.JoinHostPort(c.gateway(), p)
		if opts.XDSAddr != "" {
			if _, p, err := net.SplitHostPort(opts.XDSAddr); err == nil {
				opts.XDSAddr = net.JoinHostPort(c.gateway(), p)
			}
		}
		if err := c.assignVIPs(opts.ConfigDir); err != nil {
			return nil, fmt.Errorf("assigning service VIPs: %w", err)
		}
		// The proxy runs as uid 1337 (exempt from capture): give it a copy
		// of the binary it can execute.
		dir := filepath.Join(filepath.Dir(opts.LogDir), "proxybin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(opts.ProxyBin)
		if err != nil {
			return nil, err
		}
		opts.ProxyBin = filepath.Join(dir, "weft-proxy")
		if err := os.WriteFile(opts.ProxyBin, b, 0o755); err != nil {
			return nil, err
		}
		for _, d := range []string{filepath.Dir(dir), opts.LogDir} {
			_ = os.Chmod(d, 0o755)
		}
		m.opts = opts
	}
	if err := m.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if opts.External {
		if err := m.startExternal(ctx); err != nil {
			opts.Log.Warn("external site not started; egress tasks unavailable", "err", err)
		}
	}
	for _, w := range opts.Workloads {
		if err := m.AddWorkload(ctx, w); err != nil {
			return nil, err
		}
	}
	ok = true
	return m, nil
}

func seed(src fs.FS, dst string) error {
	return fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Task rules replace each other and invalid/ is meant to fail:
			// neither belongs in a running mesh's config.
			if p == "tasks" || p == "invalid" {
				return fs.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, p), 0o755)
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") && !strings.HasSuffix(p, ".json") {
			return nil
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, p), b, 0o644)
	})
}

func (m *Mesh) startControlPlane(ctx context.Context) error {
	args := []string{"control-plane", "--config-dir", m.opts.ConfigDir, "--secure-address", m.opts.SecureAddr,
		"--monitoring-address", m.opts.MonitorAddr}
	if m.opts.XDSAddr != "" {
		args = append(args, "--xds-address", m.opts.XDSAddr)
	}
	p, err := startProc("control-plane", m.opts.LogDir, m.opts.ControlPlaneEnv, m.opts.WeftBin, args...)
	if err != nil {
		return err
	}
	m.procs.add(p)
	err = poll(ctx, 30*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("control plane exited: %v\n%s", p.err, p.tail(2000))
		}
		c, err := net.DialTimeout("tcp", m.opts.SecureAddr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if err != nil {
		return fmt.Errorf("control plane not ready: %w", err)
	}
	// Proxies keep their last config while it is down; it comes back with
	// the same config dir, state dir and ports, and they reconnect.
	m.procs.supervise(p)
	return nil
}

// allocIP hands out the next pod/app loopback IP pair.
func (m *Mesh) allocIP() (pod, app string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nextIP
	m.nextIP++
	return fmt.Sprintf("%s.%d", m.opts.PodNet, n), fmt.Sprintf("%s.%d", m.opts.AppNet, n)
}

// AddWorkload starts an app (if any) and its proxy and waits until the proxy
// is ready.
func (m *Mesh) AddWorkload(ctx context.Context, w *Workload) error {
	if w.Namespace == "" {
		w.Namespace = "default"
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	var ns string
	if m.capture != nil && !w.Router {
		m.mu.Lock()
		n := m.nsCount + 1
		m.nsCount = n
		m.mu.Unlock()
		var err error
		if ns, w.IP, err = m.capture.addNamespace(n); err != nil {
			return fmt.Errorf("network namespace for %s: %w", w.Name, err)
		}
		w.AppIP = "0.0.0.0"
		w.Netns = ns
	}
	if w.IP == "" {
		if w.Router && strings.HasPrefix(w.Name, "istio-ingressgateway") {
			w.IP, w.AppIP = m.opts.IngressIP, m.opts.IngressIP
		} else {
			w.IP, w.AppIP = m.allocIP()
		}
	}
	if w.AdminPort == 0 {
		w.AdminPort = 15000
	}
	if !w.Router && w.ProxyPort == 0 {
		w.ProxyPort = 15080
	}
	var app *proc
	if len(w.Sample) > 0 {
		args := append([]string{"sample"}, w.Sample...)
		for _, p := range w.Ports {
			args = append(args, "--listen", net.JoinHostPort(w.AppIP, strconv.Itoa(int(p.Port))))
		}
		env := []string{"HTTP_PROXY=" + w.ProxyURL(), "http_proxy=" + w.ProxyURL(), "NO_PROXY=", "no_proxy="}
		bin := m.opts.WeftBin
		if ns != "" {
			// Captured: no proxy settings, the app calls services by name.
			env = []string{"HTTP_PROXY=", "http_proxy=", "HTTPS_PROXY=", "https_proxy="}
			bin, args = wrap(ns, false, bin, args...)
		}
		p, err := startProc(w.Name, m.opts.LogDir, env, bin, args...)
		if err != nil {
			return err
		}
		m.procs.add(p)
		app = p
	}
	kind := "sidecar"
	if w.Router {
		kind = "router"
	}
	var lbl []string
	for k, v := range w.Labels {
		lbl = append(lbl, k+"="+v)
	}
	sort.Strings(lbl)
	appAddr := w.AppIP
	if ns != "" {
		appAddr = "127.0.0.1"
	}
	rootCert, tokenFile, err := m.identityFiles(w, ns != "")
	if err != nil {
		return fmt.Errorf("%s: %w", w.Name, err)
	}
	args := []string{kind, "--xds", m.opts.SecureAddr, "--root-cert", rootCert, "--token-file", tokenFile, "--name", w.Name, "--namespace", w.Namespace,
		"--service-account", w.ServiceAccount, "--labels", strings.Join(lbl, ","), "--ip", w.IP,
		"--app-address", appAddr, "--admin-port", strconv.Itoa(int(w.AdminPort))}
	if ns != "" {
		args = append(args, "--capture=true")
	}
	if len(w.Ports) > 0 {
		args = append(args, "--ports", node.FormatPorts(w.Ports))
	}
	if w.ProxyPort != 0 {
		args = append(args, "--proxy-port", strconv.Itoa(int(w.ProxyPort)))
	}
	if w.Locality != "" {
		args = append(args, "--locality", w.Locality)
	}
	if len(m.opts.PortMap) > 0 && w.Router {
		var pm []string
		for k, v := range m.opts.PortMap {
			pm = append(pm, fmt.Sprintf("%d=%d", k, v))
		}
		sort.Strings(pm)
		args = append(args, "--port-map", strings.Join(pm, ","))
	}
	if m.External != nil {
		args = append(args, "--dns-override", m.External.dnsOverride())
	}
	bin := m.opts.ProxyBin
	if ns != "" {
		bin, args = wrap(ns, true, bin, args...)
	}
	p, err := startProc(w.Name+".proxy", m.opts.LogDir, nil, bin, args...)
	if err != nil {
		return err
	}
	m.procs.add(p)
	ready := fmt.Sprintf("http://%s/healthz/ready", net.JoinHostPort(w.IP, "15021"))
	err = poll(ctx, 30*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("proxy %s exited: %v\n%s", w.Name, p.err, p.tail(2000))
		}
		resp, err := http.Get(ready)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", ready, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("proxy %s not ready: %w", w.Name, err)
	}
	if app != nil {
		m.procs.supervise(app)
	}
	m.procs.supervise(p)
	m.mu.Lock()
	m.workloads[w.Name] = w
	m.mu.Unlock()
	return nil
}

// The external world's addresses (the demo's 127.0.20.0/24).
const (
	externalIP       = "127.0.20.1" // edition.cnn.com (ports 80 and 443)
	externalMutualIP = "127.0.20.2" // the site requiring client certificates
	externalWikiIP   = "127.0.20.3" // en.wikipedia.org, de.wikipedia.org
	externalWwwIP    = "127.0.20.4" // www.wikipedia.org
)

func (m *Mesh) startExternal(ctx context.Context) error {
	ext := &External{Host: "edition.cnn.com", IP: externalIP, CAFile: filepath.Join(m.opts.LogDir, "external-ca.pem"),
		Names: map[string]string{
			"edition.cnn.com":   externalIP,
			"en.wikipedia.org":  externalWikiIP,
			"de.wikipedia.org":  externalWikiIP,
			"www.wikipedia.org": externalWwwIP,
		}}
	args := []string{"sample", "external", "--ca-out", ext.CAFile,
		"--http", externalIP + ":80", "--https", externalIP + ":443",
		"--https", externalWikiIP + ":443", "--https", externalWwwIP + ":443"}
	for _, h := range sortedKeys(ext.Names) {
		args = append(args, "--host", h)
	}
	if err := m.startSite(ctx, "external", externalIP+":80", args...); err != nil {
		return err
	}
	mu := &MutualSite{Host: "my-nginx.mesh-external.svc.cluster.local", IP: externalMutualIP,
		CAFile:     filepath.Join(m.opts.LogDir, "external-mutual-ca.pem"),
		ClientCert: filepath.Join(m.opts.LogDir, "external-client.crt"),
		ClientKey:  filepath.Join(m.opts.LogDir, "external-client.key")}
	if err := m.startSite(ctx, "external-mutual", mu.IP+":443", "sample", "external", "--mutual", "--host", mu.Host,
		"--https", mu.IP+":443", "--ca-out", mu.CAFile, "--client-cert-out", mu.ClientCert, "--client-key-out", mu.ClientKey); err != nil {
		return err
	}
	ext.Mutual = mu
	m.External = ext
	return nil
}

// startSite starts one external site process and waits until addr accepts.
func (m *Mesh) startSite(ctx context.Context, name, addr string, args ...string) error {
	p, err := startProc(name, m.opts.LogDir, nil, m.opts.WeftBin, args...)
	if err != nil {
		return err
	}
	m.procs.add(p)
	err = poll(ctx, 10*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("%s exited (binding ports 80/443 needs root): %v", name, p.err)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if err != nil {
		return err
	}
	m.procs.supervise(p)
	return nil
}

// dnsOverride is the proxies' --dns-override for the external names.
func (e *External) dnsOverride() string {
	var kv []string
	for _, h := range sortedKeys(e.Names) {
		kv = append(kv, h+"="+e.Names[h])
	}
	return strings.Join(kv, ",")
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Workload returns a running workload by name.
func (m *Mesh) Workload(name string) *Workload {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.workloads[name]
}

// WeftBin is the weft binary the mesh runs (samples, control plane).
func (m *Mesh) WeftBin() string { return m.opts.WeftBin }

// ConfigDir is the control plane's config directory.
func (m *Mesh) ConfigDir() string { return m.opts.ConfigDir }

// LogDir holds one log file per process.
func (m *Mesh) LogDir() string { return m.opts.LogDir }

// Exited reports the name of a child process that is not running (it
// died and waits for its restart), or "".
func (m *Mesh) Exited() string {
	if p := m.procs.firstExited(); p != nil {
		return p.name
	}
	return ""
}

// Restarts lists the processes that were restarted and how often.
func (m *Mesh) Restarts() []string { return m.procs.restarts() }

// PID returns the current pid of the named process ("control-plane",
// "productpage-v1", "productpage-v1.proxy" …), or 0.
func (m *Mesh) PID(name string) int {
	m.procs.mu.Lock()
	defer m.procs.mu.Unlock()
	for _, p := range m.procs.procs {
		if p.name == name {
			return p.pid()
		}
	}
	return 0
}

// Stop stops every process (gateways and sidecars first, control plane last).
func (m *Mesh) Stop() {
	m.procs.stopAll(5 * time.Second)
	if m.capture != nil {
		m.capture.close()
	}
}

// PIDs lists the child processes' pids (tests check none survive Stop).
func (m *Mesh) PIDs() []int {
	m.procs.mu.Lock()
	defer m.procs.mu.Unlock()
	var out []int
	for _, p := range m.procs.procs {
		out = append(out, p.pid())
	}
	return out
}
