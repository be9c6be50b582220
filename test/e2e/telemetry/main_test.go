// Package telemetry checks Weft's telemetry end to end on a real local mesh
// (internal/demo: control plane, sample apps and sidecars as processes on
// loopback): Istio's standard metrics scraped from each sidecar, Envoy
// access log lines, response flags and the Envoy-named proxy stats.
package telemetry

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
)

// This package's own ports and ranges (other e2e packages use others).
const (
	xdsAddr     = "127.0.0.1:24012" // xDS + CA over mTLS
	monitorAddr = "127.0.0.1:24014"
	ingressIP   = "127.0.9.3"
)

var (
	binDir   string
	repoRoot string

	meshOnce sync.Once
	theMesh  *demo.Mesh
	meshErr  error
	meshTmp  string // the mesh's config and logs, removed at the end
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping end-to-end telemetry tests in -short mode")
		os.Exit(0)
	}
	// Fixed ports and IPs: concurrent runs of this package take turns.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "weft-e2e-telemetry.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		panic(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		panic(err)
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..", "..")
	if binDir, err = os.MkdirTemp("", "weft-e2e-telemetry-bin-"); err != nil {
		panic(err)
	}
	for _, b := range []string{"weft", "weft-proxy"} {
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
	if meshTmp != "" && code == 0 {
		os.RemoveAll(meshTmp) // kept when a test failed: its logs explain why
	}
	os.RemoveAll(binDir)
	lock.Close()
	os.Exit(code)
}

// mesh starts (once) Bookinfo, httpbin, tcp-echo, curl and the gateways,
// seeded from examples/ (whose mesh.yaml sets accessLogFile: /dev/stdout).
func mesh(t *testing.T) *demo.Mesh {
	t.Helper()
	meshOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tmp, err := os.MkdirTemp("", "weft-e2e-telemetry-mesh-")
		if err != nil {
			meshErr = err
			return
		}
		meshTmp = tmp
		theMesh, meshErr = demo.Start(ctx, demo.Options{
			ConfigDir:  filepath.Join(tmp, "config"),
			Seed:       os.DirFS(filepath.Join(repoRoot, "examples")),
			WeftBin:    filepath.Join(binDir, "weft"),
			ProxyBin:   filepath.Join(binDir, "weft-proxy"),
			SecureAddr: xdsAddr, MonitorAddr: monitorAddr,
			IngressIP: ingressIP, PodNet: "127.0.50", AppNet: "127.0.51",
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

// apply applies YAML and deletes it when the test ends.
func apply(t *testing.T, yaml string) {
	t.Helper()
	if out, err := weft(t, yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("weft apply: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		for _, doc := range strings.Split(yaml, "\n---\n") {
			if out, err := weft(t, doc, "delete", "-f", "-"); err != nil && !strings.Contains(out, "not found") {
				t.Logf("weft delete: %v\n%s", err, out)
			}
		}
	})
}

func task(name string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "tasks", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// eventually polls check until it passes or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	meshtest.Eventually(t, what, timeout, check)
}

type response struct {
	status int
	body   string
}

// get fetches rawURL with headers ("Host" sets the authority).
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
	resp, err := client.Do(req)
	if err != nil {
		return response{status: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(b)}
}

// viaSidecar is a client that uses a workload's sidecar as its HTTP proxy.
func viaSidecar(m *demo.Mesh, workload string) *http.Client {
	u, _ := url.Parse(m.Workload(workload).ProxyURL())
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}}
}

var direct = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// scrape reads a sidecar's Prometheus stats (port 15090, or 15020 merged).
func scrape(t *testing.T, m *demo.Mesh, workload, port string) string {
	t.Helper()
	w := m.Workload(workload)
	r := get(t, direct, "http://"+w.IP+":"+port+"/stats/prometheus", nil)
	if r.status != 200 {
		t.Fatalf("scraping %s:%s: %d %s", workload, port, r.status, r.body)
	}
	return r.body
}

// proxyLog reads a workload's sidecar log (its stdout carries access logs).
func proxyLog(t *testing.T, m *demo.Mesh, workload string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.LogDir(), workload+".proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
