package node

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// slowStartYAML is an httpbin whose app listens only 4 s after its
// container starts (--start-delay), with no readiness probe (as Istio's
// sample manifests), reached through the ingress gateway with the Host
// slowstart.example.
const slowStartYAML = `apiVersion: v1
kind: Service
metadata: {name: slowstart, labels: {app: slowstart}}
spec:
  selector: {app: slowstart}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slowstart}
spec:
  hosts: [slowstart.example]
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: slowstart, port: {number: 8000}}}]}]
`

const slowStartDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: slowstart}
spec:
  replicas: 1
  selector: {matchLabels: {app: slowstart}}
  template:
    metadata: {labels: {app: slowstart, version: v1}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: slowstart
        image: weft.local/httpbin:dev
        args: ["--start-delay=4s"]
        ports: [{containerPort: 8080}]
`

// answer is one request's outcome through the gateway.
type answer struct {
	at     time.Time
	status int
	body   string
}

// TestAppListensLate: a pod whose app listens 4 s after it starts is not
// Ready, and gets no request, before the app listens: every answer through
// the gateway is 503 "no healthy upstream" (no endpoint yet) until the
// first 200, and none is a connection failure at the pod's own sidecar
// (503 UF). Then a rolling restart of it under the same load loses none.
func TestAppListensLate(t *testing.T) {
	m := mesh(t)
	m.Apply(t, slowStartYAML)
	accessLogs(t, m, "default", "slowstart")
	host := map[string]string{"Host": "slowstart.example"}
	get := func() kit.Response { return kit.Get(t, kit.Direct, "http://"+m.ingress+"/get", host) }
	meshtest.Eventually(t, "the gateway routes slowstart.example (no endpoint yet)", time.Minute, func() error {
		if r := get(); r.Status != 503 || !strings.Contains(r.Body, "no healthy upstream") {
			return errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var (
		mu      sync.Mutex
		answers []answer
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				r := get()
				mu.Lock()
				answers = append(answers, answer{time.Now(), r.Status, r.Body})
				mu.Unlock()
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	pods := watchReady(ctx, m, "app=slowstart")
	eps := watchEndpoints(ctx, t, m, "slowstart.default.svc.cluster.local")

	applied := time.Now()
	m.Apply(t, slowStartDeployment)
	kubectl(t, m.n, "", "rollout", "status", "deploy/slowstart", "--timeout=3m")
	meshtest.Eventually(t, "200 from slowstart through the gateway", time.Minute, func() error {
		if r := get(); r.Status != 200 {
			return errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	})
	first := livePod(t, m, "app=slowstart")
	hook := kubectl(t, m.n, "", "get", "pod", first, "-o", "jsonpath={.spec.containers[0].lifecycle.postStart.httpGet.path}:{.spec.containers[0].lifecycle.postStart.httpGet.port}")
	t.Logf("%s: postStart hook %s", first, hook)
	if hook != "/app-ports/8080:15020" {
		t.Errorf("%s: the app container's postStart hook is %q, want /app-ports/8080:15020", first, hook)
	}

	// The rolling restart: the new pod starts late while the old one serves.
	restarted := time.Now()
	kubectl(t, m.n, "", "rollout", "restart", "deploy/slowstart")
	kubectl(t, m.n, "", "rollout", "status", "deploy/slowstart", "--timeout=3m")
	// Past the old pod's 5 s shutdown delay and the endpoint's withdrawal.
	time.Sleep(8 * time.Second)
	close(stop)
	wg.Wait()

	served := false
	var failed []answer
	for _, a := range answers {
		switch {
		case a.status == 200:
			served = true
		case a.at.Before(restarted) && !served && a.status == 503 && strings.Contains(a.body, "no healthy upstream"):
		default:
			failed = append(failed, a)
		}
	}
	for _, a := range failed {
		t.Errorf("%s: %d %.200s", a.at.Format("15:04:05.000"), a.status, a.body)
	}
	t.Logf("deployment applied %s, rollout restart %s: %d answers, %d failed",
		applied.Format("15:04:05.000"), restarted.Format("15:04:05.000"), len(answers), len(failed))

	// Each pod's timeline: the app container's start, the app's own
	// "listening" line, the sidecar's answer to the hook, Ready as this
	// test saw it, and the first 200 after it.
	for _, p := range pods.list() {
		tl := podTimeline(t, m, p)
		t.Logf("%s", tl)
		if d := tl.listening.Sub(tl.appStart); !tl.appStart.IsZero() && d < 3500*time.Millisecond {
			t.Errorf("%s: the app listened %v after it started, want its --start-delay=4s", p.name, d)
		}
		if !tl.ready.IsZero() && !tl.listening.IsZero() && tl.ready.Before(tl.listening) {
			t.Errorf("%s was Ready at %s, before its app listened at %s", p.name, tl.ready.Format("15:04:05.000"), tl.listening.Format("15:04:05.000"))
		}
		// Every control-plane replica serves the pod's endpoint only once
		// the pod is Ready (its EndpointSlice says so), never earlier.
		for _, e := range eps.seen(p.ip) {
			t.Logf("  %s", e)
			if p.ready.IsZero() || e.at.Before(p.ready.Add(-time.Second)) {
				t.Errorf("%s: %s served its endpoint as healthy at %s, before the pod was Ready (%s)", p.name, e.replica, e.at.Format("15:04:05.000"), p.ready.Format("15:04:05.000"))
			}
		}
	}
	if len(failed) > 0 {
		podDiagnostics(t, m, "app=slowstart")
	}
}

// podSeen is a pod of a watchReady selector: when this test first saw it
// Ready (zero if never).
type podSeen struct {
	name, ip string
	ready    time.Time
}

type podWatch struct {
	mu   sync.Mutex
	pods map[string]*podSeen
	ord  []string
}

func (w *podWatch) list() []podSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []podSeen
	for _, n := range w.ord {
		out = append(out, *w.pods[n])
	}
	return out
}

// watchReady polls the pods of selector every 50 ms until ctx ends and
// notes when each was first seen Ready (the API's condition times have
// whole seconds only).
func watchReady(ctx context.Context, m *nodeMesh, selector string) *podWatch {
	w := &podWatch{pods: map[string]*podSeen{}}
	go func() {
		for ctx.Err() == nil {
			l, err := m.n.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err == nil {
				now := time.Now()
				w.mu.Lock()
				for _, p := range l.Items {
					s := w.pods[p.Name]
					if s == nil {
						s = &podSeen{name: p.Name}
						w.pods[p.Name] = s
						w.ord = append(w.ord, p.Name)
					}
					if s.ip == "" {
						s.ip = p.Status.PodIP
					}
					if s.ready.IsZero() && podReady(&p) {
						s.ready = now
					}
				}
				w.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// timeline is one pod's start, from its logs and this test's watch.
type timeline struct {
	pod                         string
	appStart, listening, hooked time.Time
	hookLine                    string
	ready                       time.Time
}

func (tl timeline) String() string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format("15:04:05.000")
	}
	return "pod " + tl.pod + ": app started " + f(tl.appStart) + ", listening " + f(tl.listening) +
		", hook answered " + f(tl.hooked) + " (" + tl.hookLine + "), seen Ready " + f(tl.ready)
}

// podTimeline reads a pod's app and sidecar logs (the pod may be gone:
// then only what the watch saw). Times are the processes' own (slog's
// time=, this host's clock): the runtime's --timestamps say when
// containerd read a line, which lagged under load.
func podTimeline(t *testing.T, m *nodeMesh, p podSeen) timeline {
	tl := timeline{pod: p.name, ready: p.ready}
	stamp := func(line string) time.Time {
		_, ts, ok := strings.Cut(line, "time=")
		if !ok {
			return time.Time{}
		}
		ts, _, _ = strings.Cut(ts, " ")
		at, _ := time.Parse(time.RFC3339Nano, ts)
		return at
	}
	app, _ := m.n.Kubectl(context.Background(), nil, "logs", p.name, "-c", "slowstart")
	for _, line := range strings.Split(app, "\n") {
		switch {
		case tl.appStart.IsZero() && strings.Contains(line, "starting late"):
			tl.appStart = stamp(line)
		case tl.listening.IsZero() && strings.Contains(line, "msg=listening"):
			tl.listening = stamp(line)
		}
	}
	proxy, _ := m.n.Kubectl(context.Background(), nil, "logs", p.name, "-c", "istio-proxy")
	for _, line := range strings.Split(proxy, "\n") {
		if strings.Contains(line, "app port") {
			tl.hooked = stamp(line)
			_, tl.hookLine, _ = strings.Cut(line, "msg=")
		}
	}
	return tl
}

// endpointSeen is when a control-plane replica first listed an address
// among a service's healthy endpoints (its /debug/registryz).
type endpointSeen struct {
	replica, address string
	at               time.Time
}

func (e endpointSeen) String() string {
	return e.replica + " serves " + e.address + " as healthy from " + e.at.Format("15:04:05.000")
}

type endpointWatch struct {
	mu    sync.Mutex
	first map[[2]string]time.Time // replica, address
}

func (w *endpointWatch) seen(addr string) []endpointSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []endpointSeen
	for k, at := range w.first {
		if k[1] == addr {
			out = append(out, endpointSeen{k[0], k[1], at})
		}
	}
	return out
}

// watchEndpoints polls every control-plane replica's service registry
// (GET :15014/debug/registryz from the host) every 100 ms until ctx ends
// and notes when each first lists each healthy endpoint of hostname: each
// replica pushes what it lists, and a proxy talks to one replica.
func watchEndpoints(ctx context.Context, t *testing.T, m *nodeMesh, hostname string) *endpointWatch {
	t.Helper()
	ips := strings.Fields(kubectl(t, m.n, "", "-n", "istio-system", "get", "pods", "-l", "app=istiod", "-o", "jsonpath={.items[*].status.podIP}"))
	if len(ips) == 0 {
		t.Fatal("no control-plane pod")
	}
	w := &endpointWatch{first: map[[2]string]time.Time{}}
	for _, ip := range ips {
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
					now := time.Now()
					w.mu.Lock()
					for _, s := range svcs {
						if s.Hostname != hostname {
							continue
						}
						for _, e := range s.Endpoints {
							k := [2]string{"control plane " + ip, e.Address}
							if _, ok := w.first[k]; !ok && e.Healthy {
								w.first[k] = now
							}
						}
					}
					w.mu.Unlock()
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	return w
}

// getJSON decodes a 200 answer's JSON body into v.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := kit.Direct.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
