package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sidecar is the injected proxy container of one pod, seen from the host
// through its cgroup (the kubelet's cgroupfs driver: kubepods/<qos>/pod<uid>/<id>).
type sidecar struct{ cpuacct, memory string }

func findSidecar(t *testing.T, m *nodeMesh, selector string) sidecar {
	t.Helper()
	out := strings.Fields(kubectl(t, m.n, "", "get", "pod", "-l", selector, "--field-selector=status.phase=Running", "-o",
		`jsonpath={.items[0].metadata.uid} {.items[0].status.initContainerStatuses[?(@.name=="istio-proxy")].containerID}`))
	if len(out) != 2 {
		t.Fatalf("no injected istio-proxy for %s: %v", selector, out)
	}
	uid, id := out[0], strings.TrimPrefix(out[1], "containerd://")
	find := func(ctrl string) string {
		for _, pat := range []string{"kubepods/*/pod" + uid + "/" + id, "kubepods/pod" + uid + "/" + id} {
			if ms, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrl, pat)); len(ms) == 1 {
				return ms[0]
			}
		}
		t.Fatalf("no %s cgroup for container %s of pod %s", ctrl, id, uid)
		return ""
	}
	return sidecar{cpuacct: find("cpuacct"), memory: find("memory")}
}

// cpu is the container's CPU time so far.
func (s sidecar) cpu(t *testing.T) time.Duration {
	b, err := os.ReadFile(filepath.Join(s.cpuacct, "cpuacct.usage"))
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns)
}

// rss is the resident memory of the container's processes (VmRSS), the
// figure the footprint tests elsewhere report.
func (s sidecar) rss(t *testing.T) int64 {
	b, err := os.ReadFile(filepath.Join(s.memory, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range strings.Fields(string(b)) {
		st, err := os.ReadFile("/proc/" + p + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb * 1024
			}
		}
	}
	return total
}

// TestSidecarFootprint reports the injected sidecar's RSS and CPU in
// httpbin's pod at idle and while it serves 1,000 requests per second
// (plaintext from the host to the pod's port, captured by its iptables
// rules into the sidecar's inbound listener, PERMISSIVE).
func TestSidecarFootprint(t *testing.T) {
	m := mesh(t)
	s := findSidecar(t, m, "app=httpbin")
	target := "http://" + m.podIP(t, "app=httpbin") + ":8080/get"

	const idle = 10 * time.Second
	c0, t0 := s.cpu(t), time.Now()
	time.Sleep(idle) // measuring a window, not waiting for a condition
	idleCPU := float64(s.cpu(t)-c0) / float64(time.Since(t0))
	idleRSS := s.rss(t)

	const dur = 15 * time.Second
	load := exec.Command(filepath.Join(binDir, "weft"), "sample", "load", "-c", "16", "--qps", "1000", "-t", dur.String(), target)
	c1, t1 := s.cpu(t), time.Now()
	out, err := load.CombinedOutput()
	busy := time.Since(t1)
	loadCPU := float64(s.cpu(t)-c1) / float64(busy)
	loadRSS := s.rss(t)
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	t.Logf("load output:\n%s", out)
	ok, total := codes(string(out))
	if total == 0 || ok != total {
		t.Fatalf("load got %d of %d answers 200", ok, total)
	}
	qps := float64(total) / busy.Seconds()
	t.Logf("sidecar footprint (httpbin pod): idle RSS %.1f MiB, CPU %.2f%% of a core; at %.0f req/s: RSS %.1f MiB, CPU %.1f%% of a core (%.3f CPU-s per 1k requests)",
		float64(idleRSS)/(1<<20), idleCPU*100, qps, float64(loadRSS)/(1<<20), loadCPU*100, loadCPU/qps*1000)
	if qps < 800 {
		t.Errorf("load reached %.0f req/s, want about 1,000", qps)
	}
}

// codes sums fortio's "Code 200 : N (...)" lines.
func codes(out string) (ok, total int) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[0] == "Code" && f[2] == ":" {
			n, _ := strconv.Atoi(f[3])
			total += n
			if f[1] == "200" {
				ok += n
			}
		}
	}
	return ok, total
}
