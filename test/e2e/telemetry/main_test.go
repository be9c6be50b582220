// Package telemetry checks Weft's telemetry end to end on a real local mesh
// (internal/demo: control plane, sample apps and sidecars as processes on
// loopback): Istio's standard metrics scraped from each sidecar, Envoy
// access log lines, response flags and the Envoy-named proxy stats.
package telemetry

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// This package's own ports and ranges (other e2e packages use others).
const (
	xdsAddr     = "127.0.0.1:24012" // xDS + CA over mTLS
	monitorAddr = "127.0.0.1:24014"
	ingressIP   = "127.0.9.3"
)

var (
	binDir string
	// weft is the weft CLI against the telemetry mesh's control plane.
	weft   kit.CLI
	shared kit.SharedMesh
)

func TestMain(m *testing.M) {
	flag.Parse()
	kit.ExitIfShort("end-to-end telemetry tests")
	// Fixed ports and IPs: concurrent runs of this package take turns.
	kit.Lock("weft-e2e-telemetry")
	binDir = kit.MustBuildTemp("weft-e2e-telemetry-bin-")
	weft = kit.CLI{Bin: filepath.Join(binDir, "weft"), ControlPlane: monitorAddr}
	code := m.Run()
	shared.Stop(code != 0) // kept when a test failed: its logs explain why
	os.RemoveAll(binDir)
	os.Exit(code)
}

// mesh starts (once) Bookinfo, httpbin, tcp-echo, curl and the gateways,
// seeded from examples/ (whose mesh.yaml sets accessLogFile: /dev/stdout).
func mesh(t *testing.T) *demo.Mesh {
	t.Helper()
	return shared.Start(t, demo.Options{
		WeftBin:    filepath.Join(binDir, "weft"),
		ProxyBin:   filepath.Join(binDir, "weft-proxy"),
		SecureAddr: xdsAddr, MonitorAddr: monitorAddr,
		IngressIP: ingressIP, PodNet: "127.0.50", AppNet: "127.0.51",
	})
}

// scrape reads a sidecar's Prometheus stats (port 15090, or 15020 merged).
func scrape(t *testing.T, m *demo.Mesh, workload, port string) string {
	t.Helper()
	w := m.Workload(workload)
	r := kit.Get(t, kit.Direct, "http://"+w.IP+":"+port+"/stats/prometheus", nil)
	if r.Status != 200 {
		t.Fatalf("scraping %s:%s: %d %s", workload, port, r.Status, r.Body)
	}
	return r.Body
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
