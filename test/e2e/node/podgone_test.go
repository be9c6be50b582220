package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

const goneYAML = `apiVersion: v1
kind: Service
metadata: {name: gone, labels: {app: gone}}
spec:
  selector: {app: gone}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gone}
spec:
  replicas: 1
  selector: {matchLabels: {app: gone}}
  template:
    metadata: {labels: {app: gone, version: v1}}
    spec:
      containers:
      - name: gone
        image: weft.local/httpbin:dev
        ports: [{containerPort: 8080}]
`

// TestKilledSidecarOfDeletedPod: a sidecar killed with SIGKILL (no drain
// announcement: its registration outlives its stream for the control
// plane's 5 s grace) whose Pod is then deleted at once. The control plane
// no longer has the Pod, but the sidecar said it runs in one (Istio's
// NODE_NAME), so no replica may list the pod's address as a healthy
// endpoint once the EndpointSlice has dropped it (before the fix the
// replica the sidecar was connected to listed it healthy for the rest of
// the grace, as a VM's registration).
func TestKilledSidecarOfDeletedPod(t *testing.T) {
	m := mesh(t)
	m.Apply(t, goneYAML)
	t.Cleanup(func() {
		m.n.Kubectl(context.Background(), nil, "delete", "deployment/gone", "service/gone", "--wait=false")
	})
	kubectl(t, m.n, "", "rollout", "status", "deploy/gone", "--timeout=3m")
	pod := livePod(t, m, "app=gone")
	ip := strings.TrimSpace(kubectl(t, m.n, "", "get", "pod", pod, "-o", "jsonpath={.status.podIP}"))
	const host = "gone.default.svc.cluster.local"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := watchAddress(ctx, t, m, host, ip)
	meshtest.Eventually(t, "every replica lists "+ip+" healthy (from the EndpointSlice)", time.Minute, func() error {
		if n := w.healthyReplicas(); n < 2 {
			return errorf("%d replicas list it healthy", n)
		}
		return nil
	})

	pid, err := sidecarPID(pod)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s's sidecar (pid %d): %v", pod, pid, err)
	}
	kubectl(t, m.n, "", "delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
	deleted := time.Now()
	// Kubernetes' own endpoint removal: until the slice drops the address
	// the replicas may list it from there.
	meshtest.Eventually(t, "the EndpointSlice drops "+ip, time.Minute, func() error {
		out := kubectl(t, m.n, "", "get", "endpointslices", "-l", "kubernetes.io/service-name=gone", "-o", "jsonpath={.items[*].endpoints[*].addresses}")
		if strings.Contains(out, `"`+ip+`"`) {
			return errorf("still listed: %s", out)
		}
		return nil
	})
	dropped := time.Now()
	// Past the grace (5 s from the kill) with margin; healthy listings
	// count from 1.5 s after the slice dropped the address (the replicas'
	// informers catching up with it).
	w.reset(dropped.Add(1500 * time.Millisecond))
	time.Sleep(time.Until(killed.Add(8 * time.Second)))
	time.Sleep(time.Until(dropped.Add(3 * time.Second)))
	cancel()
	t.Logf("killed %s's sidecar at %s, pod deleted %s, slice dropped %s", pod, killed.Format("15:04:05.000"),
		deleted.Format("15:04:05.000"), dropped.Format("15:04:05.000"))
	for _, l := range w.report() {
		t.Log(l)
	}
	// One error per replica: the first and last such listing and how many.
	first, last, count := map[string]time.Time{}, map[string]time.Time{}, map[string]int{}
	for _, h := range w.healthyAfter() {
		if first[h.replica].IsZero() {
			first[h.replica] = h.at
		}
		last[h.replica] = h.at
		count[h.replica]++
	}
	for r, n := range count {
		t.Errorf("%s listed %s as a healthy endpoint of %s after its Pod was gone: %d times from %s to %s", r, ip, host, n,
			first[r].Format("15:04:05.000"), last[r].Format("15:04:05.000"))
	}
}

// sidecarPID finds the weft-proxy sidecar process of pod on this host (the
// node runs its containers here) by its command line and POD_NAME.
func sidecarPID(pod string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil || !bytes.Contains(cmd, []byte("weft-proxy\x00sidecar")) {
			continue
		}
		env, err := os.ReadFile(d + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00POD_NAME="+pod+"\x00")) {
			continue
		}
		return strconv.Atoi(filepath.Base(d))
	}
	return 0, fmt.Errorf("no weft-proxy sidecar process of pod %s", pod)
}

// addrWatch polls every control-plane replica's /debug/registryz for one
// address of one service.
type addrWatch struct {
	mu      sync.Mutex
	healthy map[string]time.Time // replica -> last seen healthy
	since   time.Time            // reset: healthy listings from then on count
	after   []seen               // healthy listings since reset
	states  map[string][]string  // replica -> state changes, for the log
	last    map[string]string
}

type seen struct {
	replica string
	at      time.Time
}

func watchAddress(ctx context.Context, t *testing.T, m *nodeMesh, hostname, addr string) *addrWatch {
	t.Helper()
	ips := strings.Fields(kubectl(t, m.n, "", "-n", "istio-system", "get", "pods", "-l", "app=istiod", "-o", "jsonpath={.items[*].status.podIP}"))
	if len(ips) < 2 {
		t.Fatalf("control-plane replicas %v, want 2", ips)
	}
	w := &addrWatch{healthy: map[string]time.Time{}, states: map[string][]string{}, last: map[string]string{}}
	for _, ip := range ips {
		replica := "control plane " + ip
		go func() {
			for ctx.Err() == nil {
				var svcs []struct {
					Hostname  string
					Endpoints []struct {
						Address string
						Healthy bool
					}
				}
				if getJSON(ctx, "http://"+ip+":15014/debug/registryz", &svcs) == nil {
					state := "absent"
					for _, s := range svcs {
						if s.Hostname != hostname {
							continue
						}
						for _, e := range s.Endpoints {
							if e.Address == addr {
								state = "unhealthy"
								if e.Healthy {
									state = "healthy"
								}
							}
						}
					}
					now := time.Now()
					w.mu.Lock()
					if state == "healthy" {
						w.healthy[replica] = now
						if !w.since.IsZero() && now.After(w.since) {
							w.after = append(w.after, seen{replica, now})
						}
					}
					if w.last[replica] != state {
						w.last[replica] = state
						w.states[replica] = append(w.states[replica], now.Format("15:04:05.000")+" "+state)
					}
					w.mu.Unlock()
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	return w
}

func (w *addrWatch) healthyReplicas() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, at := range w.healthy {
		if time.Since(at) < time.Second {
			n++
		}
	}
	return n
}

func (w *addrWatch) reset(since time.Time) {
	w.mu.Lock()
	w.since = since
	w.mu.Unlock()
}

func (w *addrWatch) healthyAfter() []seen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]seen(nil), w.after...)
}

func (w *addrWatch) report() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for r, s := range w.states {
		out = append(out, r+": "+strings.Join(s, ", "))
	}
	return out
}
