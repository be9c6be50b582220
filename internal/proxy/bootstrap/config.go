// Package bootstrap turns weft-proxy's command line and environment (read
// here and nowhere else) into a Config, and assembles the proxy from it:
// runtime, xDS client, admin, health and stats servers, signal-driven drain.
package bootstrap

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/appprobe"
	"github.com/weftmesh/weft/internal/proxy/memory"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/version"
)

// Config is everything weft-proxy needs to start.
type Config struct {
	XDS  string // control plane host:port, or replicas host:port,host:port
	Meta node.Meta

	// Identity: with a root certificate, the proxy gets a workload
	// certificate from the CA at CAAddress (default: XDS) with the join
	// token in TokenFile, and speaks xDS over mutual TLS. Without one, xDS
	// is plaintext (a control plane's development port).
	CAAddress string
	TokenFile string
	RootCert  string

	AdminPort  int // loopback only
	HealthPort int // /healthz/ready
	StatsPort  int // /stats/prometheus
	// MergedPort serves /stats/prometheus with the proxy's metrics and
	// the app's (AppMetrics URL), Istio's 15020 merge.
	MergedPort int
	AppMetrics string
	// AppProbers are the app's original probes, served on the merged port
	// as /app-health/<container>/<kind> (Istio's ISTIO_KUBE_APP_PROBERS).
	AppProbers map[string]appprobe.Prober
	BindAll    bool

	LogLevel      slog.Level
	DrainDuration time.Duration
	PeekTimeout   time.Duration
	// OwnHTTP2: downstream HTTP/2 is served by weft's own server
	// (--http2-server weft) instead of x/net's (xnet).
	OwnHTTP2    bool
	DNSOverride map[string]string // host -> ip
	PortMap     map[uint16]uint16 // listener port -> bound port
	// Memory is the Go memory policy (GOGC, GOMEMLIMIT) the command
	// applies; the environment's GOGC and GOMEMLIMIT are its defaults.
	Memory memory.Policy

	// ExitOnZeroActive: a stop signal drains for MinDrainDuration, then
	// until no downstream connection is left, instead of for
	// DrainDuration (Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS and
	// MINIMUM_DRAIN_DURATION).
	ExitOnZeroActive bool
	MinDrainDuration time.Duration
}

// Parse reads flags for the sidecar or router command; every flag falls
// back to an environment variable (WEFT_<FLAG>, dashes as underscores),
// then to the default.
func Parse(cmd string, args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	var t node.Type
	switch cmd {
	case "sidecar":
		t = node.Sidecar
	case "router":
		t = node.Router
	default:
		return nil, fmt.Errorf("unknown command %q (want sidecar or router)", cmd)
	}
	fs := flag.NewFlagSet("weft-proxy "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv("WEFT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); v != "" {
			return v
		}
		return def
	}
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "weft-proxy"
	}
	str := func(name, def, usage string) *string { return fs.String(name, env(name, def), usage) }
	xds := str("xds", "", "control plane xDS address host:port, or several replicas host:port,host:port (tried in turn; default 127.0.0.1:15012 with --root-cert, else the plaintext development port 127.0.0.1:15010)")
	caAddr := str("ca-address", "", "control plane CA address host:port or host:port,host:port (default: --xds)")
	tokenFile := str("token-file", "", "file holding the join token ('weft token create') for the first certificate")
	rootCert := str("root-cert", "", "PEM file with the mesh's root certificate(s): turns on workload identity and mTLS to the control plane")
	ns := str("namespace", "default", "workload namespace")
	sa := str("service-account", "default", "workload service account")
	name := str("name", hostname, "workload name")
	labels := str("labels", "", "workload labels k=v,k=v")
	ports := str("ports", "", "workload ports name:port:protocol,…")
	ip := str("ip", "127.0.0.1", "workload (pod) IP; proxy ports bind here")
	app := str("app-address", "", "address the application listens on (default 127.0.0.1)")
	capture := str("capture", "false", "iptables capture mode (virtualOutbound 15001 / virtualInbound 15006)")
	proxyPort := str("proxy-port", "0", "explicit-mode HTTP proxy port (0: none)")
	adminPort := str("admin-port", "15000", "admin port (loopback only)")
	healthPort := str("health-port", "15021", "health port (/healthz/ready)")
	statsPort := str("stats-port", "15090", "Prometheus stats port")
	mergedPort := str("merged-port", "", "merged Prometheus port: proxy + app metrics (default 15020; 0 with --stats-port 0)")
	appMetrics := str("app-metrics", "", "the app's Prometheus URL to merge into the merged port's /stats/prometheus")
	appProbers := str("app-probers", getenv("ISTIO_KUBE_APP_PROBERS"), "the app's probes (JSON path → probe, as the injector's ISTIO_KUBE_APP_PROBERS), served on the merged port under /app-health/")
	bindAll := str("bind-all", "false", "bind health and stats ports on all addresses")
	logLevel := str("log-level", "info", "debug, info, warn or error")
	drain := str("drain-duration", "5s", "how long connections may drain on shutdown")
	exitOnZero := str("exit-on-zero-active-connections", cmp.Or(getenv("EXIT_ON_ZERO_ACTIVE_CONNECTIONS"), "false"), "on a stop signal, drain for --minimum-drain-duration and then until no downstream connection is left, instead of for --drain-duration (default: EXIT_ON_ZERO_ACTIVE_CONNECTIONS)")
	minDrain := str("minimum-drain-duration", cmp.Or(getenv("MINIMUM_DRAIN_DURATION"), "5s"), "with --exit-on-zero-active-connections, how long to drain before counting connections (default: MINIMUM_DRAIN_DURATION, else 5s)")
	peek := str("protocol-detection-timeout", "5s", "how long listeners wait for the first bytes when sniffing")
	h2srv := str("http2-server", "weft", "downstream HTTP/2 server: weft (its own) or xnet (golang.org/x/net/http2's)")
	dns := str("dns-override", "", "resolve names to fixed IPs: host=ip,host=ip")
	portMap := str("port-map", "", "bind listeners of port A at port B instead: A=B,A=B")
	network := str("network", "", "network name (multi-network meshes)")
	clusterID := str("cluster-id", "", "cluster id")
	// Istio's injector sets ISTIO_META_NODE_NAME from the pod's
	// spec.nodeName; the control plane reads it as "this proxy runs in a pod".
	nodeName := str("node-name", getenv("ISTIO_META_NODE_NAME"), "the Kubernetes node the workload's pod runs on (default: ISTIO_META_NODE_NAME); only a proxy in a pod sets it")
	gcDef, limitDef := "100", "off"
	if v := getenv("GOGC"); v != "" {
		gcDef = v
	}
	if v := getenv("GOMEMLIMIT"); v != "" {
		limitDef = v
	}
	gcPercent := str("gc-percent", gcDef, "Go GC target percent, as GOGC (default: GOGC, else 100); off disables the GC")
	memLimit := str("memory-limit", limitDef, "Go soft memory limit, as GOMEMLIMIT: bytes with B, KiB, MiB or GiB (default: GOMEMLIMIT, else off)")
	memTarget := str("memory-target", "off", "a softer bound for Go's memory that gives way to the live heap (the GC keeps 4 MiB of headroom beyond it); bytes as --memory-limit, or off")
	locality := str("locality", "", "the workload's locality region/zone/subzone (default: from its topology labels)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c := &Config{XDS: *xds, CAAddress: *caAddr, TokenFile: *tokenFile, RootCert: *rootCert}
	switch {
	case c.XDS == "" && c.RootCert != "":
		c.XDS = "127.0.0.1:15012"
	case c.XDS == "":
		c.XDS = "127.0.0.1:15010"
	}
	if c.RootCert != "" && c.CAAddress == "" {
		c.CAAddress = c.XDS
	}
	var errs []error
	fail := func(flagName string, err error) { errs = append(errs, fmt.Errorf("--%s: %w", flagName, err)) }
	bl := func(flagName, v string) bool {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail(flagName, fmt.Errorf("%q is not a boolean", v))
		}
		return b
	}
	port := func(flagName, v string, zeroOK bool) int {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 || (p == 0 && !zeroOK) {
			fail(flagName, fmt.Errorf("%q is not a port", v))
		}
		return p
	}
	if _, err := xdsclient.SplitServers(c.XDS); err != nil {
		fail("xds", err)
	}
	if c.CAAddress != "" {
		if _, err := xdsclient.SplitServers(c.CAAddress); err != nil {
			fail("ca-address", err)
		}
	}
	if _, err := netip.ParseAddr(*ip); err != nil {
		fail("ip", err)
	}
	m := node.Meta{Type: t, IP: *ip, Name: *name, Namespace: *ns, ServiceAccount: *sa, AppAddress: *app,
		Capture: bl("capture", *capture), ProxyPort: uint32(port("proxy-port", *proxyPort, true)),
		Network: *network, ClusterID: *clusterID, NodeName: *nodeName, Version: version.Version}
	if m.AppAddress == "" {
		m.AppAddress = "127.0.0.1"
	}
	if l, err := parseLabels(*labels); err != nil {
		fail("labels", err)
	} else {
		m.Labels = l
	}
	if err := node.ValidateLocality(*locality); err != nil {
		fail("locality", err)
	}
	m.Locality = *locality
	if m.Locality == "" {
		m.Locality = node.LocalityFromLabels(m.Labels)
	}
	if ps, err := node.ParsePorts(*ports); err != nil {
		fail("ports", err)
	} else {
		m.Ports = ps
	}
	// With an identity the proxy serves "default" and "ROOTCA" itself, so
	// the control plane sends it Istio mutual TLS.
	m.MeshTLS = c.RootCert != ""
	c.Meta = m
	// Port 0 picks a free port (tests); the admin port is never public.
	c.AdminPort = port("admin-port", *adminPort, true)
	c.HealthPort = port("health-port", *healthPort, true)
	c.StatsPort = port("stats-port", *statsPort, true)
	switch {
	case *mergedPort != "":
		c.MergedPort = port("merged-port", *mergedPort, true)
	case c.StatsPort != 0:
		c.MergedPort = 15020
	}
	c.AppMetrics = *appMetrics
	if pr, err := appprobe.Parse(*appProbers); err != nil {
		fail("app-probers", err)
	} else {
		c.AppProbers = pr
	}
	if c.AppMetrics != "" && !strings.HasPrefix(c.AppMetrics, "http://") {
		fail("app-metrics", fmt.Errorf("%q: want an http:// URL", c.AppMetrics))
	}
	c.BindAll = bl("bind-all", *bindAll)
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		fail("log-level", err)
	}
	var err error
	if c.DrainDuration, err = time.ParseDuration(*drain); err != nil || c.DrainDuration < 0 {
		fail("drain-duration", fmt.Errorf("%q is not a duration", *drain))
	}
	c.ExitOnZeroActive = bl("exit-on-zero-active-connections", *exitOnZero)
	if c.MinDrainDuration, err = time.ParseDuration(*minDrain); err != nil || c.MinDrainDuration < 0 {
		fail("minimum-drain-duration", fmt.Errorf("%q is not a duration", *minDrain))
	}
	if c.PeekTimeout, err = time.ParseDuration(*peek); err != nil || c.PeekTimeout <= 0 {
		fail("protocol-detection-timeout", fmt.Errorf("%q is not a positive duration", *peek))
	}
	switch *h2srv {
	case "weft":
		c.OwnHTTP2 = true
	case "xnet":
	default:
		fail("http2-server", fmt.Errorf("%q is neither weft nor xnet", *h2srv))
	}
	if c.DNSOverride, err = parseDNSOverride(*dns); err != nil {
		fail("dns-override", err)
	}
	if c.PortMap, err = parsePortMap(*portMap); err != nil {
		fail("port-map", err)
	}
	if *gcPercent == "off" {
		c.Memory.GCPercent = -1
	} else if c.Memory.GCPercent, err = strconv.Atoi(*gcPercent); err != nil || c.Memory.GCPercent < 0 {
		fail("gc-percent", fmt.Errorf("%q is not a percentage or off", *gcPercent))
	}
	if c.Memory.MemoryLimit, err = memory.ParseBytes(*memLimit); err != nil {
		fail("memory-limit", err)
	}
	if c.Memory.Target, err = memory.ParseBytes(*memTarget); err != nil {
		fail("memory-target", err)
	}
	if c.RootCert == "" && (c.TokenFile != "" || c.CAAddress != "") {
		fail("root-cert", errors.New("required with --token-file or --ca-address: the CA is never trusted on first use"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parseDNSOverride(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		h, ip, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || h == "" {
			return nil, fmt.Errorf("%q: want host=ip", kv)
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("%q: %v", kv, err)
		}
		out[strings.ToLower(strings.TrimSuffix(h, "."))] = ip
	}
	return out, nil
}

func parsePortMap(s string) (map[uint16]uint16, error) {
	out := map[uint16]uint16{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(kv), "=")
		pa, errA := strconv.ParseUint(a, 10, 16)
		pb, errB := strconv.ParseUint(b, 10, 16)
		if !ok || errA != nil || errB != nil || pa == 0 || pb == 0 {
			return nil, fmt.Errorf("%q: want port=port", kv)
		}
		out[uint16(pa)] = uint16(pb)
	}
	return out, nil
}

// AdminAddr is where the admin port binds: the workload IP when it is a
// loopback address (explicit mode gives each workload its own), else
// 127.0.0.1, so admin is never reachable from outside the host.
func (c *Config) AdminAddr() string {
	host := "127.0.0.1"
	if a, err := netip.ParseAddr(c.Meta.IP); err == nil && a.IsLoopback() {
		host = c.Meta.IP
	}
	return netip.AddrPortFrom(netip.MustParseAddr(host), uint16(c.AdminPort)).String()
}

// PublicAddr is where the health and stats ports bind.
func (c *Config) PublicAddr(port int) string {
	if c.BindAll {
		return ":" + strconv.Itoa(port)
	}
	a, err := netip.ParseAddr(c.Meta.IP)
	if err != nil {
		return ":" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// lifecycleNode is the proxy's xDS node announcing lifecycle l.
func (c *Config) lifecycleNode(l node.Lifecycle) *corev3.Node {
	m := c.Meta
	m.Lifecycle = l
	return m.Node()
}
