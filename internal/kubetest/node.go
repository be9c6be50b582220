package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node's fixed names and addresses. One node runs at a time on a
// machine (NodeLock), so these never clash with another run.
const (
	// NodeName is the Node the kubelet registers.
	NodeName = "weft-node"
	// PodCIDR is the pod network of the node's CNI bridge.
	PodCIDR = "10.244.77.0/24"
	// Bridge is the CNI bridge's interface name.
	Bridge = "weft77"
	// ClusterDomain is the DNS domain CoreDNS serves.
	ClusterDomain = "cluster.local"
	// PauseImage is the sandbox image containerd is told to use; it must
	// be imported (NodeOptions.Images) before pods can start.
	PauseImage = "weft.local/pause:dev"
	// NodeLock serializes node tests across test binaries and runs.
	NodeLock = "/tmp/weft-kube-node.lock"
)

// NodeBinaries are the programs a node needs from BinDir (built by
// tools/kube/build.sh); the system ones are looked up in PATH and
// /usr/lib/cni.
var NodeBinaries = []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl", "coredns"}

var (
	systemBinaries = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip", "mount", "umount"}
	cniPlugins     = []string{"bridge", "host-local", "loopback", "portmap"}
	cniBinDir      = "/usr/lib/cni"
)

// Node is a single-node cluster of real components on this machine: the
// apiserver and etcd of Env, a private containerd, kube-controller-manager,
// kube-scheduler, a kubelet registered as NodeName, kube-proxy in iptables
// mode and CoreDNS serving cluster DNS from the host address. It needs root.
type Node struct {
	*Env
	// HostIP is the host's address pods reach the apiserver and DNS at.
	HostIP string
	// Containerd is the private containerd's socket.
	Containerd string
	// NodeDir holds every component's state and log.
	NodeDir string

	bin    string
	procs  []*named
	netns  map[string]bool // /run/netns entries present before start
	logf   func(string, ...any)
	lockFd *os.File
}

type named struct {
	name string
	*proc
}

// NodeOptions configure StartNode.
type NodeOptions struct {
	// BinDir holds the kube binaries (default: BinDir()).
	BinDir string
	// Images are OCI or Docker image tarballs imported into containerd
	// before the kubelet starts; one must provide PauseImage.
	Images []string
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
}

// NodeMissing reports what this machine lacks for a node, or nil.
func NodeMissing(binDir string) error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("a node needs root"))
	}
	if err := Binaries(binDir); err != nil {
		errs = append(errs, err)
	}
	for _, b := range NodeBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("%s not built (run tools/kube/build.sh)", b))
		}
	}
	for _, b := range systemBinaries {
		if _, err := exec.LookPath(b); err != nil {
			errs = append(errs, fmt.Errorf("%s not installed (Debian: containerd runc iptables iproute2)", b))
		}
	}
	for _, b := range cniPlugins {
		if _, err := os.Stat(filepath.Join(cniBinDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("CNI plugin %s not in %s (Debian: containernetworking-plugins)", b, cniBinDir))
		}
	}
	return errors.Join(errs...)
}

// RequireNode skips t unless WEFT_KUBE_E2E=1 asks for the node tests, and
// then fails (never skips) when anything is missing.
func RequireNode(t testing.TB) {
	t.Helper()
	if os.Getenv("WEFT_KUBE_E2E") != "1" {
		t.Skip("real-node test: set WEFT_KUBE_E2E=1 (root, containerd, runc, CNI plugins, tools/kube/build.sh)")
	}
	if err := NodeMissing(BinDir()); err != nil {
		t.Fatalf("WEFT_KUBE_E2E=1 but this machine cannot run a node: %v", err)
	}
}

// StartNodeT starts a node for t and tears it down when t ends, logging
// the components' log tails if t failed.
func StartNodeT(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	RequireNode(t)
	if opts.Log == nil {
		opts.Log = func(f string, a ...any) { t.Logf(f, a...) }
	}
	n, err := StartNode(context.Background(), opts)
	if err != nil {
		t.Fatalf("starting the node: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(n.Logs())
		}
		n.Stop()
	})
	return n
}

// StartNode starts every component and waits until the Node is Ready,
// the default service account exists and CoreDNS answers.
func StartNode(ctx context.Context, opts NodeOptions) (n *Node, err error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if err := NodeMissing(opts.BinDir); err != nil {
		return nil, err
	}
	lock, err := lockFile(NodeLock)
	if err != nil {
		return nil, err
	}
	hostIP, err := hostAddress()
	if err != nil {
		lock.Close()
		return nil, err
	}
	start := time.Now()
	// Whatever a killed run left behind goes first.
	cleanupStale(opts.BinDir, opts.Log)

	dir, err := os.MkdirTemp("", "weft-kubenode-")
	if err != nil {
		lock.Close()
		return nil, err
	}
	n = &Node{HostIP: hostIP, NodeDir: dir, bin: opts.BinDir, logf: opts.Log, lockFd: lock, netns: listNetns()}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, n.Logs())
			n.Stop()
			n = nil
		}
	}()
	if n.Env, err = Start(ctx, Options{BinDir: opts.BinDir, Dir: filepath.Join(dir, "api"), Address: hostIP, Log: opts.Log}); err != nil {
		return n, err
	}
	if err = n.startContainerd(ctx); err != nil {
		return n, err
	}
	for _, img := range opts.Images {
		if out, err := n.Ctr("images", "import", img); err != nil {
			return n, fmt.Errorf("importing %s: %v: %s", img, err, out)
		}
	}
	if err = n.startControllers(); err != nil {
		return n, err
	}
	if err = n.startKubelet(); err != nil {
		return n, err
	}
	if err = n.startProxy(); err != nil {
		return n, err
	}
	if err = n.startDNS(); err != nil {
		return n, err
	}
	if err = n.waitNode(ctx, 3*time.Minute); err != nil {
		return n, err
	}
	opts.Log("node %s ready in %v (host %s, pods %s, state in %s)", NodeName, time.Since(start).Round(time.Millisecond), hostIP, PodCIDR, dir)
	return n, nil
}

func (n *Node) path(parts ...string) string {
	return filepath.Join(append([]string{n.NodeDir}, parts...)...)
}

func (n *Node) start(name string, bin string, args ...string) error {
	p, err := startProc(bin, n.path(name+".log"), args...)
	if err != nil {
		return err
	}
	n.procs = append(n.procs, &named{name, p})
	return nil
}

func (n *Node) startContainerd(ctx context.Context) error {
	cni := n.path("cni", "net.d")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	// bridge + host-local give each pod an address on the node's pod
	// network; portmap serves hostPort. containerd adds loopback itself.
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "weft-node",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, Bridge, n.path("cni", "ipam"), PodCIDR)
	if err := os.WriteFile(filepath.Join(cni, "10-weft-node.conflist"), []byte(conf), 0o644); err != nil {
		return err
	}
	n.Containerd = n.path("containerd.sock")
	// restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and runc
	// fails to lower a sandbox's oom_score_adj below containerd's own
	// (docs/kubernetes.md). Every path is private to this node.
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, n.path("containerd", "root"), n.path("containerd", "state"), n.Containerd, n.path("containerd.ttrpc.sock"),
		n.path("containerd", "opt"), PauseImage, n.path("runc"), cniBinDir, cni)
	if err := os.WriteFile(n.path("containerd.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	bin, _ := exec.LookPath("containerd")
	if err := n.start("containerd", bin, "--config", n.path("containerd.toml"), "--log-level", "warn"); err != nil {
		return err
	}
	return poll(ctx, 60*time.Second, "containerd", n.exitedAny, func() error {
		_, err := n.Ctr("version")
		return err
	})
}

// Ctr runs ctr against the node's containerd in the CRI namespace.
func (n *Node) Ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address", n.Containerd, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

func (n *Node) startControllers() error {
	kc := n.Kubeconfig
	// The service-account key lets the token controller sign, and the
	// root CA goes into every namespace's kube-root-ca.crt.
	if err := n.start("kube-controller-manager", filepath.Join(n.bin, "kube-controller-manager"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--service-account-private-key-file="+n.SASigningKey,
		"--root-ca-file="+n.Config.TLSClientConfig.CAFile,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--cluster-name=weft",
		"--controllers=*",
		"--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5",
		"--v=0",
	); err != nil {
		return err
	}
	return n.start("kube-scheduler", filepath.Join(n.bin, "kube-scheduler"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--v=0")
}

func (n *Node) startKubelet() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	// What this VM needs (docs/kubernetes.md): cgroup v1 with the cgroupfs
	// driver, no failing on swap; eviction and image GC off so a small
	// disk never evicts the test's pods or the imported images. The disk
	// thresholds are absolute: 1% of a large shared disk (2.5 GB of 252)
	// put the node under DiskPressure, and its taint kept every pod
	// Pending, whenever other work left less than that free.
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
clusterDNS: [%q]
clusterDomain: %s
podCIDR: %s
podLogsDir: %s
enforceNodeAllocatable: []
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "256Mi"
  imagefs.available: "256Mi"
  nodefs.inodesFree: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
resolvConf: %s
`, n.Containerd, n.HostIP, ports[0], ports[1], n.HostIP, ClusterDomain, PodCIDR, n.path("pod-logs"), n.path("resolv.conf"))
	// Pods resolve through CoreDNS only; the host's resolver is not part
	// of the test (and may be unreachable from the pod network).
	if err := os.WriteFile(n.path("resolv.conf"), []byte("nameserver "+n.HostIP+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(n.path("kubelet.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	return n.start("kubelet", filepath.Join(n.bin, "kubelet"),
		"--config="+n.path("kubelet.yaml"),
		"--kubeconfig="+n.Kubeconfig,
		"--hostname-override="+NodeName, "--node-ip="+n.HostIP,
		"--root-dir="+n.path("kubelet"), "--cert-dir="+n.path("kubelet", "pki"),
		"--v=0")
}

func (n *Node) startProxy() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	// conntrack-max-per-core=0 leaves the host's conntrack sysctls alone;
	// oom-score-adj=0 because lowering it needs CAP_SYS_RESOURCE.
	return n.start("kube-proxy", filepath.Join(n.bin, "kube-proxy"),
		"--kubeconfig="+n.Kubeconfig, "--proxy-mode=iptables",
		"--hostname-override="+NodeName, "--cluster-cidr="+PodCIDR,
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(ports[0]),
		"--healthz-bind-address=127.0.0.1:"+strconv.Itoa(ports[1]),
		"--conntrack-max-per-core=0", "--oom-score-adj=0", "--v=0")
}

func (n *Node) startDNS() error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	corefile := fmt.Sprintf(`%s:53 {
    bind %s
    errors
    ready 127.0.0.1:%d
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s kubetest
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
}
`, ".", n.HostIP, ports[0], ClusterDomain, n.Kubeconfig)
	if err := os.WriteFile(n.path("Corefile"), []byte(corefile), 0o644); err != nil {
		return err
	}
	return n.start("coredns", filepath.Join(n.bin, "coredns"), "-conf", n.path("Corefile"))
}

// waitNode waits for the Node to be Ready, the default namespace's
// service account and CoreDNS to answer for the kubernetes Service.
func (n *Node) waitNode(ctx context.Context, limit time.Duration) error {
	return poll(ctx, limit, "node", n.exitedAny, func() error {
		node, err := n.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
				if !ready {
					return fmt.Errorf("node not ready: %s", c.Message)
				}
			}
		}
		if !ready {
			return errors.New("node has no Ready condition")
		}
		if _, err := n.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return err
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(n.HostIP, "53"))
		}}
		ips, err := r.LookupHost(ctx, "kubernetes.default.svc."+ClusterDomain)
		if err != nil || len(ips) == 0 || ips[0] != KubernetesServiceIP {
			return fmt.Errorf("CoreDNS: kubernetes.default = %v, %v", ips, err)
		}
		return nil
	})
}

// Kubectl runs kubectl against the node's apiserver, stdin from in.
func (n *Node) Kubectl(ctx context.Context, in []byte, args ...string) (string, error) {
	c := exec.CommandContext(ctx, filepath.Join(n.bin, "kubectl"), append([]string{"--kubeconfig=" + n.Kubeconfig}, args...)...)
	if in != nil {
		c.Stdin = bytes.NewReader(in)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *Node) exitedAny() error {
	for _, p := range n.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
	return n.Env.exited()
}

// Logs returns the tail of every component's log.
func (n *Node) Logs() string {
	var b strings.Builder
	names := []string{"api/etcd", "api/apiserver"}
	for _, p := range n.procs {
		names = append(names, p.name)
	}
	for _, name := range names {
		fmt.Fprintf(&b, "--- %s.log (tail)\n%s\n", name, tail(n.path(name+".log")))
	}
	return b.String()
}

func poll(ctx context.Context, limit time.Duration, what string, exited func() error, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if err := exited(); err != nil {
			return err
		}
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v", what, limit, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// hostAddress is the IPv4 address of the interface with the default
// route: pods reach the host there (the bridge address exists only once
// the first pod is set up).
func hostAddress() (string, error) {
	out, err := exec.Command("ip", "-4", "-o", "route", "get", "1.1.1.1").Output()
	if err == nil {
		f := strings.Fields(string(out))
		for i := range len(f) - 1 {
			if f[i] == "src" {
				return f[i+1], nil
			}
		}
	}
	ifs, _ := net.InterfaceAddrs()
	for _, a := range ifs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("no non-loopback IPv4 address for pods to reach the host (ip route: %v)", err)
}
