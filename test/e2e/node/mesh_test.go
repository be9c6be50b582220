package node

import (
	"context"
	"fmt"
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

	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/bookinfo"
	"github.com/weftmesh/weft/test/e2e/kit"
)

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

// Istio's sample manifests with only the image names changed (examples/kube).
var (
	bookinfoYAML = "kube/bookinfo.yaml"
	httpbinYAML  = "kube/httpbin.yaml"
	curlYAML     = "kube/curl.yaml"
	gatewayYAML  = "kube/bookinfo-gateway.yaml"
	rulesYAML    = "kube/destination-rule-all.yaml"
)

// meshOnce installs Weft and the samples once for the tests that use them.
var (
	meshOnce sync.Once
	meshErr  error
	theMesh  *nodeMesh
)

// nodeMesh is Bookinfo, httpbin and curl in the injected "default"
// namespace, curl again in "legacy" without sidecars, and Weft's control
// plane and ingress gateway in istio-system, all as pods on the node.
type nodeMesh struct {
	n       *kubetest.Node
	ingress string // the ingress gateway Service's ClusterIP:80

	mu    sync.Mutex
	users map[string]*http.Client
}

var pageClient = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}

// mesh installs Weft with `weft install` (the control plane as a pod, its
// images from the node's containerd), labels default for injection,
// applies the samples with kubectl and waits for every pod to be Ready.
func mesh(t *testing.T) *nodeMesh {
	t.Helper()
	n := node(t)
	meshOnce.Do(func() {
		start := time.Now()
		meshErr = func() error {
			ctx := context.Background()
			run := func(stdin string, args ...string) error {
				var in []byte
				if stdin != "" {
					in = []byte(stdin)
				}
				_, err := n.Kubectl(ctx, in, args...)
				return err
			}
			if out, err := weftCmd(n, "install", "--set", "hub=weft.local", "--set", "tag=dev"); err != nil {
				return fmt.Errorf("weft install: %v\n%s", err, out)
			}
			if err := run("", "-n", "istio-system", "rollout", "status", "deploy/istiod", "--timeout=4m"); err != nil {
				return err
			}
			if err := run("", "label", "namespace", "default", "istio-injection=enabled", "--overwrite"); err != nil {
				return err
			}
			for _, f := range []string{bookinfoYAML, httpbinYAML, curlYAML, gatewayYAML, rulesYAML} {
				if err := run(example(f), "apply", "-f", "-"); err != nil {
					return err
				}
			}
			if err := run("", "create", "namespace", "legacy"); err != nil {
				return err
			}
			if err := run(example(curlYAML), "-n", "legacy", "apply", "-f", "-"); err != nil {
				return err
			}
			for _, ns := range []string{"istio-system", "default", "legacy"} {
				if err := run("", "-n", ns, "wait", "--for=condition=Available", "deployment", "--all", "--timeout=6m"); err != nil {
					return err
				}
			}
			ip, err := n.Kubectl(ctx, nil, "-n", "istio-system", "get", "svc", "istio-ingressgateway", "-o", "jsonpath={.spec.clusterIP}")
			if err != nil {
				return err
			}
			theMesh = &nodeMesh{n: n, ingress: strings.TrimSpace(ip) + ":80", users: map[string]*http.Client{}}
			return nil
		}()
		t.Logf("weft installed and the samples Ready in %v", time.Since(start).Round(time.Millisecond))
	})
	if meshErr != nil {
		t.Fatalf("mesh on the node: %v", meshErr)
	}
	return theMesh
}

func weftCmd(n *kubetest.Node, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "weft"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+n.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Apply applies YAML with kubectl and deletes it when t ends.
func (m *nodeMesh) Apply(t *testing.T, yaml string) {
	t.Helper()
	kubectl(t, m.n, yaml, "apply", "-f", "-")
	t.Cleanup(func() {
		m.n.Kubectl(context.Background(), []byte(yaml), "delete", "--ignore-not-found", "-f", "-")
	})
}

// Page fetches /productpage through the ingress gateway's Service (the
// host reaches its ClusterIP through kube-proxy's rules).
func (m *nodeMesh) Page(t *testing.T, user string) kit.Response {
	t.Helper()
	m.mu.Lock()
	c, ok := m.users[user]
	if !ok {
		jar, _ := cookiejar.New(nil)
		c = &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: pageClient}
		if user != "" {
			resp, err := c.PostForm("http://"+m.ingress+"/login", url.Values{"username": {user}, "passwd": {"password"}})
			if err != nil {
				m.mu.Unlock()
				t.Fatalf("login as %s: %v", user, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		m.users[user] = c
	}
	m.mu.Unlock()
	return kit.Get(t, c, "http://"+m.ingress+"/productpage", nil)
}

// curlIn runs curl in the curl pod of ns (kubectl exec), the way Istio's
// tasks do; Status is -1 when curl got no HTTP response.
func (m *nodeMesh) curlIn(t *testing.T, ns, rawURL string, hdr map[string]string) kit.Response {
	t.Helper()
	args := []string{"-n", ns, "exec", "deploy/curl", "-c", "curl", "--", "curl", "-s", "-m", "30", "-w", "\n%{http_code}", rawURL}
	for k, v := range hdr {
		args = append(args, "-H", k+": "+v)
	}
	start := time.Now()
	out, _ := m.n.Kubectl(context.Background(), nil, args...)
	el := time.Since(start)
	s := strings.TrimRight(out, "\n")
	i := strings.LastIndexByte(s, '\n')
	code, err := strconv.Atoi(s[i+1:])
	if err != nil || code == 0 {
		return kit.Response{Status: -1, Body: s, Elapsed: el}
	}
	body := ""
	if i > 0 {
		body = s[:i]
	}
	return kit.Response{Status: code, Body: body, Elapsed: el}
}

func (m *nodeMesh) FromCurl(t *testing.T, rawURL string, hdr map[string]string) kit.Response {
	return m.curlIn(t, "default", rawURL, hdr)
}

// Plain is the task's legacy client: curl without a sidecar calling
// httpbin.default by its ClusterIP.
func (m *nodeMesh) Plain(t *testing.T, path string) kit.Response {
	return m.curlIn(t, "legacy", "http://httpbin.default:8000"+path, nil)
}

func (m *nodeMesh) CurlID() string { return "spiffe://cluster.local/ns/default/sa/curl" }

func (m *nodeMesh) HTTPBinStats(t *testing.T) kit.Response {
	return kit.Get(t, kit.Direct, "http://"+m.podIP(t, "app=httpbin")+":15090/stats/prometheus", nil)
}

func (m *nodeMesh) podIP(t *testing.T, selector string) string {
	t.Helper()
	ip := strings.TrimSpace(kubectl(t, m.n, "", "get", "pod", "-l", selector, "--field-selector=status.phase=Running",
		"-o", "jsonpath={.items[0].status.podIP}"))
	if ip == "" {
		t.Fatalf("no running pod for %s", selector)
	}
	return ip
}

// TestBookinfo: every sample pod in the injected namespace carries the
// sidecar and is Ready, legacy's does not, and productpage is served
// through the ingress gateway.
func TestBookinfo(t *testing.T) {
	m := mesh(t)
	out := kubectl(t, m.n, "", "get", "pods", "-A", "-o",
		`jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.metadata.annotations.sidecar\.istio\.io/status} {range .spec.initContainers[*]}{.name},{end} {range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}`)
	t.Logf("pods:\n%s", out)
	apps := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		name, ready := f[0], f[len(f)-1]
		if !strings.HasPrefix(name, "default/") && !strings.HasPrefix(name, "legacy/") && !strings.HasPrefix(name, "istio-system/") {
			continue // another test's
		}
		injected := strings.Contains(line, "istio-proxy,")
		switch {
		case strings.HasPrefix(name, "default/"):
			apps++
			if !injected || !strings.Contains(line, `"revision"`) {
				t.Errorf("%s has no injected sidecar: %s", name, line)
			}
		case strings.HasPrefix(name, "legacy/"):
			if injected {
				t.Errorf("%s in the uninjected namespace got a sidecar", name)
			}
		}
		if ready != "True" {
			t.Errorf("%s not Ready", name)
		}
	}
	// details, ratings, reviews v1-v3, productpage, httpbin, curl
	if apps < 8 {
		t.Errorf("%d pods in default, want at least 8", apps)
	}
	meshtest.Eventually(t, "productpage through the ingress gateway", time.Minute, func() error {
		r := m.Page(t, "")
		if r.Status != 200 || !strings.Contains(r.Body, "The Comedy of Errors") || !strings.Contains(r.Body, "Book Reviews") {
			return errorf("status %d: %.300s", r.Status, r.Body)
		}
		return nil
	})
	// The curl pod reaches reviews by its short name (CoreDNS, the search
	// path) through its sidecar.
	meshtest.Eventually(t, "curl → reviews:9080", 30*time.Second, func() error {
		r := m.FromCurl(t, "http://reviews:9080/reviews/0", nil)
		if r.Status != 200 {
			return errorf("status %d: %.300s", r.Status, r.Body)
		}
		return nil
	})
	// A shell in the curl image (busybox), as tasks use it: a loop piping
	// curl through grep, all inside the pod.
	out = kubectl(t, m.n, "", "exec", "deploy/curl", "-c", "curl", "--", "sh", "-c",
		`for i in 1 2 3; do curl -s http://productpage:9080/productpage | grep -o "<title>.*</title>"; done`)
	if n := strings.Count(out, "<title>Simple Bookstore App</title>"); n != 3 {
		t.Errorf("sh -c in the curl pod: %d titles, want 3:\n%s", n, out)
	}
}

// Istio's tasks, with their YAML applied with kubectl and the demo's checks.
func TestRequestRouting(t *testing.T) { bookinfo.RequestRouting(t, mesh(t)) }
func TestTrafficShifting(t *testing.T) {
	m := mesh(t)
	shiftingDiagnostics(t, m)
	bookinfo.TrafficShifting(t, m)
}
func TestFaultInjection(t *testing.T) { bookinfo.FaultInjection(t, mesh(t)) }
func TestMutualTLSMigration(t *testing.T) {
	bookinfo.MTLSMigration(t, mesh(t))
}
