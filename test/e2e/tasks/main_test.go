// Package tasks reproduces Istio's traffic-management tasks end to end on a
// real local mesh (internal/demo: the control plane, sample apps and proxies
// as real processes on loopback), with the tasks' own YAML.
package tasks

import (
	"flag"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/test/e2e/kit"
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
	binDir string
	// weft is the weft CLI against the task mesh's control plane.
	weft   kit.CLI
	shared kit.SharedMesh
	// theMesh is the mesh once a test has started it (nil before).
	theMesh *demo.Mesh
)

func TestMain(m *testing.M) {
	flag.Parse()
	kit.ExitIfShort("end-to-end task tests")
	// The task mesh uses fixed ports, loopback IPs and namespace names:
	// concurrent runs of this package (two checkouts, a helper's ./...)
	// take turns. The capture-mode child runs under its parent's lock.
	if captureMode {
		binDir = os.Getenv("WEFT_E2E_BIN") // the parent built them
	} else {
		kit.Lock("weft-e2e-tasks")
		binDir = kit.MustBuildTemp("weft-e2e-bin-")
	}
	weft = kit.CLI{Bin: filepath.Join(binDir, "weft"), ControlPlane: monitorAddr}
	code := m.Run()
	shared.Stop(code != 0)
	if !captureMode {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// mesh starts (once) the shared task mesh: Bookinfo, httpbin, tcp-echo, curl
// and the gateways, seeded from examples/.
func mesh(t *testing.T) *demo.Mesh {
	t.Helper()
	theMesh = shared.Start(t, demo.Options{
		WeftBin:    filepath.Join(binDir, "weft"),
		ProxyBin:   filepath.Join(binDir, "weft-proxy"),
		SecureAddr: xdsAddr, MonitorAddr: monitorAddr,
		IngressIP: ingressIP, PodNet: "127.0.30", AppNet: "127.0.31",
		External: os.Geteuid() == 0 && !captureMode,
		Capture:  captureMode, CaptureID: "e2e", CaptureNet: 2,
		// As Istio's tests of Sidecar ingress tls (TestSidecarIngressTLS).
		ControlPlaneEnv: []string{"ENABLE_TLS_ON_SIDECAR_INGRESS=true"},
	})
	return theMesh
}

func ingressURL(path string) string { return "http://" + ingressIP + ":8080" + path }

var (
	usersMu sync.Mutex
	users   = map[string]*http.Client{}
)

// productpage fetches the Bookinfo page through the ingress gateway as user
// ("" = anonymous). A user logs in once, as in Istio's doc tests (POST /login,
// then the session cookie makes productpage send end-user to reviews).
func productpage(t *testing.T, user string) kit.Response {
	t.Helper()
	if user == "" {
		return kit.Get(t, kit.Direct, ingressURL("/productpage"), nil)
	}
	usersMu.Lock()
	c, ok := users[user]
	if !ok {
		jar, _ := cookiejar.New(nil)
		c = &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: kit.Direct.Transport}
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
	return kit.Get(t, c, ingressURL("/productpage"), nil)
}

// fromWorkload makes a request the way the workload's app would: in capture
// mode from inside its network namespace with no proxy settings (like
// kubectl exec … curl), else through its sidecar's HTTP proxy port.
func fromWorkload(t *testing.T, m *demo.Mesh, workload, rawURL string, hdr map[string]string) kit.Response {
	t.Helper()
	w := m.Workload(workload)
	if w.Netns == "" {
		return kit.Get(t, kit.ViaSidecar(m, workload), rawURL, hdr)
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
		return kit.Response{Status: -1, Body: s, Elapsed: el}
	}
	body := ""
	if i > 0 {
		body = s[:i]
	}
	return kit.Response{Status: code, Body: body, Elapsed: el}
}
