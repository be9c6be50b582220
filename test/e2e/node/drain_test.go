package node

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/bookinfo"
)

// failure is one failed page: when its answer came and what it was.
type failure struct {
	at   time.Time
	what string
}

func (f failure) String() string { return f.at.Format("15:04:05.000") + " " + f.what }

// loop sends n productpage requests through the ingress gateway, conc at
// a time, paced at qps in total, and reports each failure: a non-200, or
// a page without reviews (productpage shows its reviews error when its
// call to reviews failed). during runs once after start requests.
func loop(t *testing.T, m *nodeMesh, n, conc int, qps float64, start int, during func()) (failed []failure) {
	t.Helper()
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	tick := time.NewTicker(time.Duration(float64(time.Second) / qps))
	defer tick.Stop()
	jobs := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := m.Page(t, "")
				bad := ""
				switch {
				case r.Status != 200:
					bad = r.Body
				case !strings.Contains(r.Body, "Book Reviews") || strings.Contains(r.Body, "unavailable"):
					bad = "page without reviews (reviews " + bookinfo.ReviewsVersion(r.Body) + ")"
				}
				if bad != "" {
					mu.Lock()
					failed = append(failed, failure{time.Now(), "#" + strconv.Itoa(i) + ": " + bad})
					mu.Unlock()
				}
			}
		}()
	}
	var once sync.Once
	for i := range n {
		<-tick.C
		if int(next.Add(1)) == start {
			once.Do(func() { go during() })
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return failed
}

// TestPodDeletedUnderLoad deletes one of two productpage pods while a
// bounded loop sends pages through the ingress gateway: no page may fail.
// The pod's endpoint leaves the gateway's EDS when the EndpointSlice
// marks it terminating; until then its app keeps serving (the sample
// images' --shutdown-delay), and what is in flight is drained by its
// sidecar, which outlives the app as a native sidecar.
func TestPodDeletedUnderLoad(t *testing.T) {
	m := mesh(t)
	accessLogs(t, m, "default", "productpage", "reviews")
	accessLogs(t, m, "istio-system", "istio-ingressgateway")
	kubectl(t, m.n, "", "scale", "deploy/productpage-v1", "--replicas=2")
	t.Cleanup(func() { m.n.Kubectl(context.Background(), nil, "scale", "deploy/productpage-v1", "--replicas=1") })
	kubectl(t, m.n, "", "rollout", "status", "deploy/productpage-v1", "--timeout=3m")
	victim := livePod(t, m, "app=productpage")
	// Both endpoints serve before the loop starts.
	meshtest.Eventually(t, "two productpage endpoints", time.Minute, func() error {
		out := kubectl(t, m.n, "", "get", "endpointslices", "-l", "kubernetes.io/service-name=productpage", "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}")
		if strings.Count(out, "true") != 2 {
			return errorf("ready endpoints: %s", out)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	hops := watchHops(ctx, m, victim, "productpage")
	var deleted time.Time
	const n = 600
	failed := loop(t, m, n, 4, 60, 150, func() {
		deleted = time.Now()
		if _, err := m.n.Kubectl(context.Background(), nil, "delete", "pod", victim, "--wait=false"); err != nil {
			t.Errorf("deleting %s: %v", victim, err)
		}
	})
	t.Logf("deleted %s at %s during %d pages at 60/s", victim, deleted.Format("15:04:05.000"), n)
	judge(t, failed, deleted, n)
	hops.report(ctx, t, m, len(failed) > 0)
	if len(failed) > 0 {
		podDiagnostics(t, m, "app=productpage")
	}
}

// podDiagnostics logs what a failure near a pod's start or end needs to
// be explained: each pod's creation, readiness and container start times,
// the events, and the sidecars' own logs (with the answers to the app
// containers' postStart hooks).
func podDiagnostics(t *testing.T, m *nodeMesh, selector string) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "pods", "-l", selector, "-o", "jsonpath={range .items[*]}{.metadata.name} ip={.status.podIP} created={.metadata.creationTimestamp} deleting={.metadata.deletionTimestamp} conditions={.status.conditions} containers={.status.containerStatuses}{'\\n'}{end}"},
		{"get", "events", "-n", "default", "--sort-by=.lastTimestamp"},
	} {
		out, err := m.n.Kubectl(context.Background(), nil, args...)
		t.Logf("kubectl %s (%v):\n%s", strings.Join(args[:2], " "), err, out)
	}
	// The sidecars' own lines, without their access logs.
	out, err := m.n.Kubectl(context.Background(), nil, "logs", "-l", selector, "-c", "istio-proxy", "--tail=-1", "--prefix", "--timestamps")
	var own []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, `HTTP/1.1" `) && strings.TrimSpace(l) != "" {
			own = append(own, l)
		}
	}
	own = own[max(0, len(own)-60):]
	t.Logf("kubectl logs istio-proxy, without access logs (%v):\n%s", err, strings.Join(own, "\n"))
}

// judge fails t for every failed request: with the apps' shutdown delay,
// the sidecars' drain and retries, a pod leaving loses none. Each failure
// is reported with its time from the pod terminating.
func judge(t *testing.T, failed []failure, terminating time.Time, n int) {
	t.Helper()
	for _, f := range failed {
		t.Errorf("failed %v after the pod started terminating: %s", f.at.Sub(terminating).Round(time.Millisecond), f)
	}
	t.Logf("%d of %d requests failed", len(failed), n)
}

// livePod names a pod of selector in default that is not terminating
// (an earlier test's scale-down may still be draining one).
func livePod(t *testing.T, m *nodeMesh, selector string) string {
	t.Helper()
	pods, err := m.n.Client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			return p.Name
		}
	}
	t.Fatalf("no live pod for %s", selector)
	return ""
}

// terminatingAt watches the pods of selector and returns when the first
// of those present now starts terminating (or is gone).
func terminatingAt(ctx context.Context, m *nodeMesh, selector string) <-chan time.Time {
	out := make(chan time.Time, 1)
	before, err := m.n.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			for _, p := range before.Items {
				if p.DeletionTimestamp != nil {
					continue // already leaving (an earlier rollout's)
				}
				cur, err := m.n.Client.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
				if err != nil || cur.DeletionTimestamp != nil {
					out <- time.Now()
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return out
}

// TestRollingRestartUnderLoad restarts reviews (kubectl rollout restart:
// a new pod Ready before the old one is deleted) while pages load: no page
// may lose its reviews. The Deployment deletes the old pod as soon as the
// new one is Ready, often before productpage's sidecar has the new
// endpoint; without the app's shutdown delay the old app refused the
// requests of that moment (503 UF at the old pod's sidecar, retried by
// productpage's sidecar on the only endpoint it knew: 503 URX). And the
// new pod got requests before its app listened (503 UF at its own
// sidecar) while the control plane took a pod's sidecar, once up, for a
// healthy endpoint (TestAppListensLate).
func TestRollingRestartUnderLoad(t *testing.T) {
	m := mesh(t)
	m.Apply(t, bookinfo.AllV1)
	accessLogs(t, m, "default", "reviews", "productpage")
	meshtest.Eventually(t, "all traffic to reviews v1", 30*time.Second, func() error {
		return bookinfo.PagesAll(t, m, "", 10, bookinfo.NoStars)
	})
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	old := livePod(t, m, "app=reviews,version=v1")
	hops := watchHops(ctx, m, old, "reviews")
	oldGone := terminatingAt(ctx, m, "app=reviews,version=v1")
	var restarted time.Time
	var finished time.Time
	const n = 1800 // 60 s at 30/s: the rollout ends well within it
	failed := loop(t, m, n, 4, 30, 60, func() {
		restarted = time.Now()
		if _, err := m.n.Kubectl(context.Background(), nil, "rollout", "restart", "deploy/reviews-v1"); err != nil {
			done <- err
			return
		}
		_, err := m.n.Kubectl(context.Background(), nil, "rollout", "status", "deploy/reviews-v1", "--timeout=4m")
		finished = time.Now()
		done <- err
	})
	end := time.Now()
	if err := <-done; err != nil {
		t.Fatalf("rollout: %v", err)
	}
	t.Logf("rolling restart of reviews-v1 from %s to %s during %d pages at 30/s (until %s): %d failed",
		restarted.Format("15:04:05.000"), finished.Format("15:04:05.000"), n, end.Format("15:04:05.000"), len(failed))
	if finished.After(end) {
		t.Errorf("the rollout outlasted the load loop")
	}
	terminating, ok := <-oldGone
	if !ok {
		t.Fatal("the old reviews-v1 pod was never seen terminating")
	}
	judge(t, failed, terminating, n)
	hops.report(ctx, t, m, len(failed) > 0)
	if len(failed) > 0 {
		podDiagnostics(t, m, "app=reviews")
	}
}
