// Package kubetest runs a real kube-apiserver and etcd on loopback for
// tests and for `make kube-dev`: no kubelet, no controllers, just the API
// server with its admission, RBAC, CRDs, TokenRequest and TokenReview. The
// binaries are built once from the pinned k8s.io/kubernetes release in
// tools/kube into .cache/kube/bin (tools/kube/build.sh).
//
// Tests call Shared (one environment per test binary, stopped by Main) or
// Start (their own). Without the binaries they skip with a one-line reason,
// unless WEFT_KUBE_E2E is set (CI), where a missing binary fails the test.
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
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Env is a running kube-apiserver backed by its own etcd.
type Env struct {
	// Config is an admin (system:masters) client config.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for Config.
	Kubeconfig string
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// Dir holds the PKI, the etcd data and both processes' logs.
	Dir string
	// SAPublicKey and SASigningKey are the PEM files that verify and sign
	// service-account tokens (tests forge expired tokens with the key).
	SAPublicKey, SASigningKey string

	etcd, apiserver *proc
	stopOnce        sync.Once
}

// Options configure Start.
type Options struct {
	// BinDir holds kube-apiserver and etcd (default: BinDir()).
	BinDir string
	// Dir is where state goes (default: a new temp dir, removed by Stop).
	Dir string
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
	// Address, when set, is where the apiserver listens and what it
	// advertises as the kubernetes Service's endpoint, so pods on a real
	// node can reach it (default: 127.0.0.1 with no endpoint).
	Address string
}

// KubernetesServiceIP is the ClusterIP of the kubernetes Service: the first
// address of the service range the apiserver is started with.
const KubernetesServiceIP = "10.96.0.1"

// BinDir is where the binaries are looked up: $WEFT_KUBE_BIN, else
// .cache/kube/bin at the repository root (found from the working dir).
func BinDir() string {
	if d := os.Getenv("WEFT_KUBE_BIN"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tools", "kube", "go.mod")); err == nil {
			return filepath.Join(d, ".cache", "kube", "bin")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, ".cache", "kube", "bin")
		}
	}
}

// Binaries reports whether kube-apiserver and etcd are in dir, or why not.
func Binaries(dir string) error {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("%s not built (run tools/kube/build.sh): %w", b, err)
		}
	}
	return nil
}

// Require skips t when the binaries are missing, or fails it when
// WEFT_KUBE_E2E says they must be there.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() && os.Getenv("WEFT_KUBE_E2E") == "" {
		t.Skip("kube-apiserver tests skipped in -short mode")
	}
	if err := Binaries(BinDir()); err != nil {
		if os.Getenv("WEFT_KUBE_E2E") != "" {
			t.Fatalf("WEFT_KUBE_E2E is set but %v", err)
		}
		t.Skipf("no kube-apiserver: %v", err)
	}
}

var shared struct {
	sync.Mutex
	env *Env
	err error
}

// Shared returns the test binary's one environment, starting it on first
// use. Call Main from TestMain so it is stopped at the end.
func Shared(t testing.TB) *Env {
	t.Helper()
	Require(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.env == nil && shared.err == nil {
		shared.env, shared.err = Start(context.Background(), Options{Log: func(f string, a ...any) { t.Logf(f, a...) }})
	}
	if shared.err != nil {
		t.Fatalf("starting kube-apiserver: %v", shared.err)
	}
	return shared.env
}

// Main runs the tests, stops the shared environment and runs after (the
// caller's clean-up: its defers would not run past os.Exit).
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	shared.Lock()
	if shared.env != nil {
		shared.env.Stop()
	}
	shared.Unlock()
	// os.Exit skips the caller's defers: its clean-up runs here.
	for _, f := range after {
		f()
	}
	os.Exit(code)
}

// StartT starts an environment of t's own, stopped when t ends.
func StartT(t testing.TB) *Env {
	t.Helper()
	Require(t)
	e, err := Start(context.Background(), Options{Log: func(f string, a ...any) { t.Logf(f, a...) }})
	if err != nil {
		t.Fatalf("starting kube-apiserver: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// Start runs etcd and kube-apiserver on free loopback ports and waits for
// the apiserver to be ready.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if err := Binaries(opts.BinDir); err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "weft-kube-"); err != nil {
			return nil, err
		}
	}
	e := &Env{Dir: dir}
	ok := false
	defer func() {
		if !ok {
			e.Stop()
		}
	}()
	start := time.Now()
	addr, reconciler := "127.0.0.1", "none"
	if opts.Address != "" {
		addr, reconciler = opts.Address, "lease"
	}
	p, err := writePKI(dir, net.ParseIP(addr))
	if err != nil {
		return nil, fmt.Errorf("generating certificates: %w", err)
	}
	e.SAPublicKey, e.SASigningKey = p.saPub, p.saKey

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	e.etcd, err = startProc(filepath.Join(opts.BinDir, "etcd"), filepath.Join(dir, "etcd.log"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	apiURL := "https://" + net.JoinHostPort(addr, strconv.Itoa(ports[2]))
	e.apiserver, err = startProc(filepath.Join(opts.BinDir, "kube-apiserver"), filepath.Join(dir, "apiserver.log"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+addr, "--advertise-address="+addr,
		// No kubernetes Service endpoints for a loopback address.
		"--endpoint-reconciler-type="+reconciler,
		// The kubelet registers its node by name; reach it by address.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+p.servingCert, "--tls-private-key-file="+p.servingKy,
		"--client-ca-file="+p.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.saPub,
		"--service-account-signing-key-file="+p.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		"--profiling=false",
		"--v=0",
	)
	if err != nil {
		return nil, err
	}
	e.Config = &rest.Config{
		Host:            apiURL,
		TLSClientConfig: rest.TLSClientConfig{CAFile: p.caCert, CertFile: p.adminCert, KeyFile: p.adminKey},
		QPS:             -1, // tests create many objects quickly
	}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return nil, err
	}
	if err := e.waitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(e.Kubeconfig, apiURL, p); err != nil {
		return nil, err
	}
	opts.Log("kube-apiserver ready at %s in %v (state in %s)", apiURL, time.Since(start).Round(time.Millisecond), dir)
	ok = true
	return e, nil
}

// waitReady polls /readyz and then waits for the default namespace, which
// the apiserver creates itself once its bootstrap controllers run.
func (e *Env) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if err := e.exited(); err != nil {
			return err
		}
		body, err := e.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && bytes.Equal(bytes.TrimSpace(body), []byte("ok")) {
			if _, err = e.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %v: %v; log tail:\n%s", limit, last, tail(filepath.Join(e.Dir, "apiserver.log")))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exited reports a process that died during start-up, with its log.
func (e *Env) exited() error {
	for name, c := range map[string]*proc{"etcd": e.etcd, "apiserver": e.apiserver} {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %v; log tail:\n%s", name, c.err, tail(filepath.Join(e.Dir, name+".log")))
		default:
		}
	}
	return nil
}

// Stop ends both processes and removes the state directory.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		for _, c := range []*proc{e.apiserver, e.etcd} {
			if c == nil {
				continue
			}
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				c.cmd.Process.Kill()
				<-c.done
			}
		}
		if e.Dir != "" {
			os.RemoveAll(e.Dir)
		}
	})
}

// Namespace creates a fresh namespace (with the "default" service
// account, which no controller creates here) and deletes it when t ends.
// With no namespace controller running, its objects stay (the namespace
// stays Terminating): tests look only at their own namespaces.
func (e *Env) Namespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	if _, err := e.Client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating service account: %v", err)
	}
	t.Cleanup(func() {
		e.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// proc is a started process; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done
}

func startProc(bin, logPath string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = logf, logf
	// Die with the test binary even when it is killed.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	p := &proc{cmd: c, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func writeKubeconfig(path, server string, p *pki) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.caPEM}
	cert, err1 := os.ReadFile(p.adminCert)
	key, err2 := os.ReadFile(p.adminKey)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	cfg.CurrentContext = "kubetest"
	return clientcmd.WriteToFile(*cfg, path)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
