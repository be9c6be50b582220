package tasks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// Istio conformance in the demo mesh with config written for these tests:
// DestinationRule merging, the Sidecar resource and locality load
// balancing. The backends are test-owned servers (so a test can make one
// fail), registered as mesh workloads on 127.0.30.21x / 127.0.31.21x.

// backend answers with its workload name, or 503 while failing.
type backend struct {
	name string
	fail atomic.Bool
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.fail.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "down", b.name)
		return
	}
	fmt.Fprintln(w, b.name)
}

var backends = map[string]*backend{}

// startBackend serves a backend for workload name (app label app) on port
// 5000 of a fixed app IP and registers its sidecar, with the locality
// given; started once per test binary.
func startBackend(t *testing.T, m *demo.Mesh, name, app, version, locality string, octet int) *backend {
	t.Helper()
	if b := backends[name]; b != nil {
		b.fail.Store(false)
		return b
	}
	b := &backend{name: name}
	w := &demo.Workload{Name: name, ServiceAccount: app, Labels: map[string]string{"app": app, "version": version},
		Ports: []node.Port{{Name: "http", Port: 5000, Protocol: "HTTP"}}, Locality: locality,
		IP: fmt.Sprintf("127.0.30.%d", octet), AppIP: fmt.Sprintf("127.0.31.%d", octet)}
	ln, err := net.Listen("tcp", w.AppIP+":5000")
	if err != nil {
		t.Fatal(err)
	}
	go (&http.Server{Handler: b}).Serve(ln) // lives as long as the shared mesh
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.AddWorkload(ctx, w); err != nil {
		t.Fatal(err)
	}
	backends[name] = b
	return b
}

// client registers a sidecar-only workload (no app) and returns an HTTP
// client that sends through it.
func client(t *testing.T, m *demo.Mesh, name, locality string, octet int) *http.Client {
	t.Helper()
	if m.Workload(name) == nil {
		w := &demo.Workload{Name: name, ServiceAccount: name, Labels: map[string]string{"app": name}, Locality: locality,
			IP: fmt.Sprintf("127.0.30.%d", octet), AppIP: fmt.Sprintf("127.0.31.%d", octet)}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.AddWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	c := kit.ViaSidecar(m, name)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

func skipInCapture(t *testing.T) {
	t.Helper()
	if captureMode {
		t.Skip("test-owned backends listen on the host, not in network namespaces")
	}
}

const mergeConfig = `
apiVersion: v1
kind: Service
metadata: {name: conf-merge}
spec:
  selector: {app: conf-merge}
  ports: [{name: http, port: 5000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: conf-merge-v1}
spec:
  host: conf-merge
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: conf-merge-v2}
spec:
  host: conf-merge.default.svc.cluster.local
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: conf-merge}
spec:
  hosts: [conf-merge]
  http:
  - match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: conf-merge, subset: v2}}]
  - match: [{headers: {x-version: {exact: v9}}}]
    route: [{destination: {host: conf-merge, subset: v9}}]
  - route: [{destination: {host: conf-merge, subset: v1}}]
`

// Two DestinationRules for one host: Istio merges their subsets, so a
// VirtualService routes to both; a subset neither defines has no cluster
// (503 NC), and weft analyze reports it as IST0101.
func TestDestinationRuleMerge(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	startBackend(t, m, "conf-merge-v1", "conf-merge", "v1", "", 210)
	startBackend(t, m, "conf-merge-v2", "conf-merge", "v2", "", 211)
	weft.Apply(t, mergeConfig)
	c := kit.ViaSidecar(m, "curl")
	for _, tc := range []struct {
		version string
		Status  int
		Body    string
	}{{"", 200, "conf-merge-v1"}, {"v2", 200, "conf-merge-v2"}, {"v9", 503, ""}} {
		meshtest.Eventually(t, "x-version "+tc.version, 15*time.Second, func() error {
			r := kit.Get(t, c, "http://conf-merge:5000/", map[string]string{"x-version": tc.version})
			if r.Status != tc.Status || !strings.Contains(r.Body, tc.Body) {
				return fmt.Errorf("status %d body %q, want %d %q", r.Status, strings.TrimSpace(r.Body), tc.Status, tc.Body)
			}
			return nil
		})
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "merge.yaml")
	if err := os.WriteFile(f, []byte(mergeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(filepath.Join(binDir, "weft"), "analyze", f).CombinedOutput()
	if !strings.Contains(string(out), `IST0101`) || !strings.Contains(string(out), `conf-merge.default.svc.cluster.local+v9`) && !strings.Contains(string(out), `conf-merge+v9`) {
		t.Errorf("weft analyze should report the undefined subset v9 (IST0101):\n%s", out)
	}
	if strings.Contains(string(out), "+v2") || strings.Contains(string(out), "+v1") {
		t.Errorf("weft analyze reports a subset the merged rules define:\n%s", out)
	}
}

// A Sidecar limits a workload's egress to one host of its namespace; other
// mesh services and unknown hosts follow the Sidecar's outboundTrafficPolicy.
func TestSidecarEgressScope(t *testing.T) {
	skipInCapture(t)
	m := mesh(t)
	startBackend(t, m, "conf-merge-v1", "conf-merge", "v1", "", 210)
	startBackend(t, m, "conf-merge-v2", "conf-merge", "v2", "", 211)
	weft.Apply(t, mergeConfig)
	c := client(t, m, "conf-scoped", "", 216)
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "outside") }))
	defer outside.Close()
	sidecar := func(mode string) string {
		return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-scoped}
spec:
  workloadSelector: {labels: {app: conf-scoped}}
  egress:
  - hosts: ["./conf-merge.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: %s}
`, mode)
	}
	weft.Apply(t, sidecar("REGISTRY_ONLY"))
	meshtest.Eventually(t, "REGISTRY_ONLY Sidecar: only conf-merge", 15*time.Second, func() error {
		if r := kit.Get(t, c, "http://conf-merge:5000/", nil); r.Status != 200 {
			return fmt.Errorf("conf-merge (imported): %d %s", r.Status, r.Body)
		}
		if r := kit.Get(t, c, "http://httpbin:8000/get", nil); r.Status != 502 {
			return fmt.Errorf("httpbin (not imported, REGISTRY_ONLY): %d, want 502", r.Status)
		}
		if r := kit.Get(t, c, outside.URL, nil); r.Status != 502 {
			return fmt.Errorf("unknown host (REGISTRY_ONLY): %d, want 502", r.Status)
		}
		return nil
	})
	// The proxy holds only what the Sidecar imports.
	clusters := kit.Get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload("conf-scoped").AdminURL()+"/clusters", nil)
	if !strings.Contains(clusters.Body, "conf-merge.default.svc.cluster.local") || strings.Contains(clusters.Body, "httpbin") || strings.Contains(clusters.Body, "reviews") {
		t.Errorf("scoped proxy's clusters should hold conf-merge and no other service:\n%.2000s", clusters.Body)
	}
	weft.Apply(t, sidecar("ALLOW_ANY"))
	meshtest.Eventually(t, "ALLOW_ANY Sidecar: unknown hosts pass through", 15*time.Second, func() error {
		if r := kit.Get(t, c, outside.URL, nil); r.Status != 200 || strings.TrimSpace(r.Body) != "outside" {
			return fmt.Errorf("unknown host (ALLOW_ANY): %d %q", r.Status, r.Body)
		}
		if r := kit.Get(t, c, "http://conf-merge:5000/", nil); r.Status != 200 {
			return fmt.Errorf("conf-merge (imported): %d %s", r.Status, r.Body)
		}
		return nil
	})
	// An egress listener with a port and a bind address is a real
	// listener the app connects to directly (Istio's captureMode NONE
	// pattern); it routes by Host like the captured port would.
	ip := m.Workload("conf-scoped").IP
	weft.Apply(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: conf-scoped}
spec:
  workloadSelector: {labels: {app: conf-scoped}}
  egress:
  - port: {number: 5000, protocol: HTTP, name: http}
    bind: %s
    captureMode: NONE
    hosts: ["./conf-merge.default.svc.cluster.local"]
`, ip))
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	meshtest.Eventually(t, "bound egress listener routes by Host", 15*time.Second, func() error {
		r := kit.Get(t, direct, "http://"+ip+":5000/", map[string]string{"Host": "conf-merge:5000"})
		if r.Status != 200 || !strings.HasPrefix(strings.TrimSpace(r.Body), "conf-merge-v") {
			return fmt.Errorf("status %d body %q", r.Status, strings.TrimSpace(r.Body))
		}
		return nil
	})
}

// localityTask sets up one of Istio's locality tasks: the helloworld
// instances (by locality), a client in region1/zone1/sub1 and a Service
// svc over the instances whose DestinationRule has trafficPolicy (YAML,
// indented four spaces).
func localityTask(t *testing.T, clientName string, clientIP int, svc, trafficPolicy string) (map[string]*backend, *http.Client) {
	t.Helper()
	skipInCapture(t)
	m := mesh(t)
	bs := map[string]*backend{
		"region1/zone1": startBackend(t, m, "conf-hw-r1z1", "conf-hw", "v1", "region1/zone1/sub1", 212),
		"region1/zone2": startBackend(t, m, "conf-hw-r1z2", "conf-hw", "v1", "region1/zone2/sub1", 213),
		"region2/zone3": startBackend(t, m, "conf-hw-r2z3", "conf-hw", "v1", "region2/zone3/sub1", 214),
		"region3/zone4": startBackend(t, m, "conf-hw-r3z4", "conf-hw", "v1", "region3/zone4/sub1", 215),
	}
	c := client(t, m, clientName, "region1/zone1/sub1", clientIP)
	weft.Apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: conf-hw}
  ports: [{name: http, port: 5000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %[1]s}
spec:
  host: %[1]s.default.svc.cluster.local
  trafficPolicy:
%[2]s`, svc, trafficPolicy))
	return bs, c
}

// Istio's "Locality failover" task: the client in region1/zone1 is served
// by its own zone; as each serving locality fails (outlier detection ejects
// it), traffic moves to the same region's other zone, then to region2 (the
// failover rule's target), then to region3. Istio's task relies on
// Kubernetes readiness as well to take drained pods out; here outlier
// detection alone ejects them, so it may eject every host
// (maxEjectionPercent 100; Envoy's default 10% ejects one).
func TestLocalityFailover(t *testing.T) {
	bs, c := localityTask(t, "conf-sleep-failover", 217, "conf-hw-failover", `
    connectionPool: {http: {maxRequestsPerConnection: 1}}
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover: [{from: region1, to: region2}]
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 1m, maxEjectionPercent: 100}
`)
	servedBy := func(want string) {
		t.Helper()
		meshtest.Eventually(t, "served by "+want, 20*time.Second, func() error {
			for range 5 {
				r := kit.Get(t, c, "http://conf-hw-failover:5000/", nil)
				if r.Status != 200 || strings.TrimSpace(r.Body) != bs[want].name {
					return fmt.Errorf("status %d from %q", r.Status, strings.TrimSpace(r.Body))
				}
			}
			return nil
		})
	}
	servedBy("region1/zone1")
	for _, step := range []struct{ fail, next string }{
		{"region1/zone1", "region1/zone2"},
		{"region1/zone2", "region2/zone3"},
		{"region2/zone3", "region3/zone4"},
	} {
		bs[step.fail].fail.Store(true)
		servedBy(step.next)
	}
	for _, b := range bs {
		b.fail.Store(false)
	}
}

// Istio's "Locality weighted distribution" task: from region1/zone1, 70% to
// its own zone, 20% to region1/zone2, 10% to region3/zone4, none to region2.
func TestLocalityWeightedDistribution(t *testing.T) {
	bs, c := localityTask(t, "conf-sleep-distribute", 218, "conf-hw-weighted", `
    loadBalancer:
      localityLbSetting:
        enabled: true
        distribute:
        - from: region1/zone1/*
          to:
            "region1/zone1/*": 70
            "region1/zone2/*": 20
            "region3/zone4/*": 10
    outlierDetection: {consecutive5xxErrors: 100, interval: 1s, baseEjectionTime: 1m}
`)
	byName := map[string]string{}
	for loc, b := range bs {
		byName[b.name] = loc
	}
	meshtest.Eventually(t, "70/20/10 distribution", 30*time.Second, func() error {
		counts := map[string]int{}
		for range 100 {
			r := kit.Get(t, c, "http://conf-hw-weighted:5000/", nil)
			if r.Status != 200 {
				return fmt.Errorf("status %d: %s", r.Status, r.Body)
			}
			counts[byName[strings.TrimSpace(r.Body)]]++
		}
		z1, z2, r3, r2 := counts["region1/zone1"], counts["region1/zone2"], counts["region3/zone4"], counts["region2/zone3"]
		if z1 < 60 || z1 > 80 || z2 < 12 || z2 > 28 || r3 < 4 || r3 > 16 || r2 != 0 {
			return fmt.Errorf("100 requests: %v", counts)
		}
		t.Logf("100 requests: %v", counts)
		return nil
	})
}
