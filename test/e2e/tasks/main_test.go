// Package tasks reproduces Istio's traffic-management tasks end to end on a
// real local mesh (internal/demo: the control plane, sample apps and proxies
// as real processes on loopback), with the tasks' own YAML.
package tasks

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
)

// captureMode is set in the child test process TestCaptureMode starts: the
// same task tests then run with every workload in its own network namespace.
var captureMode = os.Getenv("WEFT_E2E_CAPTURE") == "1"

var (
	xdsAddr     = "127.0.0.1:25012" // xDS + CA over mTLS
	monitorAddr = "127.0.0.1:25014"
	ingressIP   = "127.0.9.1"
)

func init() {
	if captureMode {
		xdsAddr, monitorAddr, ingressIP = "127.0.0.1:26012", "127.0.0.1:26014", "127.0.9.2"
	}
}

var (
	binDir   string
	repoRoot string

	meshOnce sync.Once
	theMesh  *demo.Mesh
	meshErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping end-to-end task tests in -short mode")
		os.Exit(0)
	}
	// The task mesh uses fixed ports, loopback IPs and namespace names:
	// concurrent runs of this package (two checkouts, a helper's ./...)
	// take turns. The capture-mode child runs under its parent's lock.
	if !captureMode {
		lock, err := os.OpenFile(filepath.Join(os.TempDir(), "weft-e2e-tasks.lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			panic(err)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			panic(err)
		}
		defer lock.Close()
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..", "..")
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	if captureMode {
		binDir = os.Getenv("WEFT_E2E_BIN")
	}
	for _, b := range []string{"weft", "weft-proxy"} {
		if captureMode {
			break // the parent built them
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b), "./cmd/"+b)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	if theMesh != nil {
		theMesh.Stop()
	}
	if !captureMode {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// mesh starts (once) the shared task mesh: Bookinfo, httpbin, tcp-echo, curl
// and the gateways, seeded from examples/.
func mesh(t *testing.T) *demo.Mesh {
	t.Helper()
	meshOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tmp, err := os.MkdirTemp("", "weft-e2e-mesh-")
		if err != nil {
			meshErr = err
			return
		}
		theMesh, meshErr = demo.Start(ctx, demo.Options{
			ConfigDir:  filepath.Join(tmp, "config"),
			Seed:       os.DirFS(filepath.Join(repoRoot, "examples")),
			WeftBin:    filepath.Join(binDir, "weft"),
			ProxyBin:   filepath.Join(binDir, "weft-proxy"),
			SecureAddr: xdsAddr, MonitorAddr: monitorAddr,
			IngressIP: ingressIP, PodNet: "127.0.30", AppNet: "127.0.31",
			External: os.Geteuid() == 0 && !captureMode,
			Capture:  captureMode, CaptureID: "e2e", CaptureNet: 2,
			Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	})
	if meshErr != nil {
		t.Fatalf("starting the mesh: %v", meshErr)
	}
	return theMesh
}

// weft runs the weft CLI against the test mesh's control plane.
func weft(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "weft"), args...)
	cmd.Env = append(os.Environ(), "WEFT_CONTROL_PLANE="+monitorAddr)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// apply applies YAML with `weft apply -f -` and deletes it when the test ends.
func apply(t *testing.T, yaml string) {
	t.Helper()
	if out, err := weft(t, yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("weft apply: %v\n%s", err, out)
	}
	// Delete document by document: a later apply in the same test may have
	// replaced or removed some of them already (NotFound is an error, as
	// with kubectl), and that must not keep the rest alive.
	t.Cleanup(func() {
		for _, doc := range strings.Split(yaml, "\n---\n") {
			if !strings.Contains(doc, "kind:") {
				continue // header comments
			}
			if out, err := weft(t, doc, "delete", "-f", "-"); err != nil && !strings.Contains(out, "not found") {
				t.Logf("weft delete: %v\n%s", err, out)
			}
		}
	})
}

// eventually polls check until it passes or the deadline (config propagation
// is eventually consistent, as in Istio's doc tests).
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	meshtest.Eventually(t, what, timeout, check)
}

type response struct {
	status  int
	body    string
	header  http.Header
	elapsed time.Duration
}

var ingressClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// get fetches url with headers through proxy ("" = direct).
func get(t *testing.T, client *http.Client, rawURL string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return response{status: -1, body: err.Error(), elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(b), header: resp.Header, elapsed: time.Since(start)}
}

// viaSidecar is an HTTP client that sends through a workload's sidecar, the
// way that workload's app does (HTTP_PROXY).
func viaSidecar(m *demo.Mesh, workload string) *http.Client {
	u, _ := url.Parse(m.Workload(workload).ProxyURL())
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}}
}

func ingressURL(path string) string { return "http://" + ingressIP + ":8080" + path }

var (
	usersMu sync.Mutex
	users   = map[string]*http.Client{}
)

// productpage fetches the Bookinfo page through the ingress gateway as user
// ("" = anonymous). A user logs in once, as in Istio's doc tests (POST /login,
// then the session cookie makes productpage send end-user to reviews).
func productpage(t *testing.T, user string) response {
	t.Helper()
	if user == "" {
		return get(t, ingressClient, ingressURL("/productpage"), nil)
	}
	usersMu.Lock()
	c, ok := users[user]
	if !ok {
		jar, _ := cookiejar.New(nil)
		c = &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: ingressClient.Transport}
		resp, err := c.PostForm(ingressURL("/login"), url.Values{"username": {user}, "passwd": {"password"}})
		if err != nil {
			usersMu.Unlock()
			t.Fatalf("login as %s: %v", user, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		users[user] = c
	}
	usersMu.Unlock()
	return get(t, c, ingressURL("/productpage"), nil)
}

// fromWorkload makes a request the way the workload's app would: in capture
// mode from inside its network namespace with no proxy settings (like
// kubectl exec … curl), else through its sidecar's HTTP proxy port.
func fromWorkload(t *testing.T, m *demo.Mesh, workload, rawURL string, hdr map[string]string) response {
	t.Helper()
	w := m.Workload(workload)
	if w.Netns == "" {
		return get(t, viaSidecar(m, workload), rawURL, hdr)
	}
	args := []string{"netns", "exec", w.Netns, m.WeftBin(), "sample", "curl", "-s", "-m", "30s", "-w", "\n%{http_code}", rawURL}
	for k, v := range hdr {
		args = append(args, "-H", k+": "+v)
	}
	start := time.Now()
	out, _ := exec.Command("ip", args...).Output()
	el := time.Since(start)
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	code, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return response{status: -1, body: s, elapsed: el}
	}
	body := ""
	if i > 0 {
		body = s[:i]
	}
	return response{status: code, body: body, elapsed: el}
}

// task reads a task's YAML from examples/tasks (tests run in their package
// directory).
func task(name string) string {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "tasks", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}
