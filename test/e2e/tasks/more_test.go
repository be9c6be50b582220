package tasks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/test/e2e/kit"
)

var (
	tcpEchoAllV1 = kit.Task("tcp-traffic-shifting-all-v1/tcp-echo-all-v1.yaml")
	tcpEcho20v2  = kit.Task("tcp-traffic-shifting-20-v2/tcp-echo-20-v2.yaml")
)

// echo opens one connection through the ingress gateway's TCP port, sends a
// line and returns the first word of the answer ("one" or "two").
func echo(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "hello weft\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading echo: %w", err)
	}
	if !strings.HasSuffix(line, " hello weft\n") {
		return "", fmt.Errorf("unexpected echo %q", line)
	}
	return strings.Fields(line)[0], nil
}

// TM-04 TCP Traffic Shifting through the ingress gateway on port 31400.
func TestTCPTrafficShifting(t *testing.T) {
	mesh(t)
	addr := ingressIP + ":31400"
	weft.Apply(t, tcpEchoAllV1)
	meshtest.Eventually(t, "tcp-echo all v1", 10*time.Second, func() error {
		for i := 0; i < 20; i++ {
			p, err := echo(addr)
			if err != nil {
				return err
			}
			if p != "one" {
				return fmt.Errorf("connection %d answered %q", i, p)
			}
		}
		return nil
	})
	weft.Apply(t, tcpEcho20v2)
	meshtest.Eventually(t, "v2 appears", 10*time.Second, func() error {
		for i := 0; i < 50; i++ {
			if p, _ := echo(addr); p == "two" {
				return nil
			}
		}
		return fmt.Errorf("no 'two' in 50 connections")
	})
	const n = 400
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		p, err := echo(addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		counts[p]++
	}
	t.Logf("80/20 over %d connections: %v", n, counts)
	if frac := float64(counts["two"]) / n; counts["one"]+counts["two"] != n || frac < 0.12 || frac > 0.28 {
		t.Fatalf("v2 share %.3f (%v), want 0.20 ± 0.08", frac, counts)
	}
}

// TM-05 Request Timeouts.
func TestRequestTimeouts(t *testing.T) {
	mesh(t)
	weft.Apply(t, allV1)
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
`)
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      delay:
        percent: 100
        fixedDelay: 2s
    route:
    - destination:
        host: ratings
        subset: v1
`)
	meshtest.Eventually(t, "stars after a 2s delay", 10*time.Second, func() error {
		r := productpage(t, "")
		if !strings.Contains(r.Body, star) || r.Elapsed < 2*time.Second {
			return fmt.Errorf("reviews %s, %v", reviewsVersion(r.Body), r.Elapsed)
		}
		return nil
	})
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
    timeout: 0.5s
`)
	meshtest.Eventually(t, "reviews unavailable after 0.5s timeouts", 10*time.Second, func() error {
		r := productpage(t, "")
		if !strings.Contains(r.Body, "Sorry, product reviews are currently unavailable for this book.") {
			return fmt.Errorf("status %d, reviews %s after %v", r.Status, reviewsVersion(r.Body), r.Elapsed)
		}
		if r.Elapsed < 900*time.Millisecond || r.Elapsed > 1800*time.Millisecond {
			return fmt.Errorf("page took %v, want about 1s", r.Elapsed)
		}
		t.Logf("page with a 0.5s reviews timeout took %v", r.Elapsed)
		return nil
	})
	m := theMesh
	r := kit.Get(t, kit.ViaSidecar(m, "productpage-v1"), "http://reviews:9080/reviews/0", nil)
	if r.Status != 504 || strings.TrimSpace(r.Body) != "upstream request timeout" {
		t.Errorf("direct reviews call: want 504 \"upstream request timeout\", got %d %q after %v", r.Status, r.Body, r.Elapsed)
	}
}

// flaky is a test-owned backend registered in the mesh as service "flaky":
// it fails the first two attempts of each request id, then succeeds.
type flaky struct {
	mu       sync.Mutex
	attempts map[string][]string // x-request-id → x-envoy-attempt-count values seen
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("x-request-id")
	f.mu.Lock()
	f.attempts[id] = append(f.attempts[id], r.Header.Get("x-envoy-attempt-count"))
	n := len(f.attempts[id])
	f.mu.Unlock()
	if n <= 2 {
		w.WriteHeader(503)
		fmt.Fprintln(w, "flaky failure", n)
		return
	}
	fmt.Fprintln(w, "ok after", n)
}

// startFlaky serves flaky on the app IP of a new workload and registers it.
func startFlaky(t *testing.T, m *demo.Mesh) *flaky {
	t.Helper()
	f := &flaky{attempts: map[string][]string{}}
	w := &demo.Workload{Name: "flaky-v1", ServiceAccount: "flaky", Labels: map[string]string{"app": "flaky", "version": "v1"},
		Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}, IP: "127.0.30.200", AppIP: "127.0.31.200"}
	ln, err := net.Listen("tcp", w.AppIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	weft.Apply(t, `
apiVersion: v1
kind: Service
metadata:
  name: flaky
spec:
  selector:
    app: flaky
  ports:
  - name: http
    port: 8000
    targetPort: 8080
`)
	if m.Workload(w.Name) == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.AddWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// Retries: a VirtualService retry policy retries an upstream that fails
// twice; the backend sees attempts 1, 2, 3.
func TestRetries(t *testing.T) {
	m := mesh(t)
	f := startFlaky(t, m)
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: flaky
spec:
  hosts:
  - flaky
  http:
  - route:
    - destination:
        host: flaky
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: 5xx
`)
	client := kit.ViaSidecar(m, "curl")
	meshtest.Eventually(t, "retried request succeeds", 10*time.Second, func() error {
		r := kit.Get(t, client, "http://flaky:8000/", map[string]string{"x-request-id": fmt.Sprintf("retry-%d", time.Now().UnixNano())})
		if r.Status != 200 {
			return fmt.Errorf("status %d: %s", r.Status, r.Body)
		}
		return nil
	})
	id := "retry-final"
	r := kit.Get(t, client, "http://flaky:8000/", map[string]string{"x-request-id": id})
	f.mu.Lock()
	seen := append([]string(nil), f.attempts[id]...)
	f.mu.Unlock()
	if r.Status != 200 || strings.Join(seen, ",") != "1,2,3" {
		t.Fatalf("want 200 after attempts 1,2,3; got %d after attempts %v", r.Status, seen)
	}
}

// TM-06 Circuit Breaking: maxConnections 1 and http1MaxPendingRequests 1, 3
// concurrent clients × 30 requests → some 503 overflow, the rest 200.
func TestCircuitBreaking(t *testing.T) {
	m := mesh(t)
	weft.Apply(t, kit.Task("circuit-breaking/destination-rule-httpbin.yaml"))
	client := kit.ViaSidecar(m, "curl")
	var ok, overflow, other atomic.Int64
	meshtest.Eventually(t, "some requests overflow", 20*time.Second, func() error {
		ok.Store(0)
		overflow.Store(0)
		other.Store(0)
		var wg sync.WaitGroup
		for c := 0; c < 3; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					r := kit.Get(t, client, "http://httpbin:8000/get", nil)
					switch {
					case r.Status == 200:
						ok.Add(1)
					case r.Status == 503 && strings.Contains(r.Body, "overflow"):
						overflow.Add(1)
					default:
						other.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if overflow.Load() == 0 || ok.Load() == 0 || other.Load() != 0 {
			return fmt.Errorf("200: %d, 503 overflow: %d, other: %d", ok.Load(), overflow.Load(), other.Load())
		}
		return nil
	})
	t.Logf("3 clients × 30: 200=%d, 503 UO=%d", ok.Load(), overflow.Load())
	stats := kit.Get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload("curl").AdminURL()+"/stats", nil)
	if !strings.Contains(stats.Body, "outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow") {
		t.Errorf("curl sidecar /stats lacks httpbin's upstream_rq_pending_overflow:\n%.500s", stats.Body)
	}
}

// TM-07 Mirroring: v1 serves, v2 receives the mirrored copies.
func TestMirroring(t *testing.T) {
	m := mesh(t)
	if m.Workload("httpbin-v2") == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		w := &demo.Workload{Name: "httpbin-v2", ServiceAccount: "httpbin", Labels: map[string]string{"app": "httpbin", "version": "v2"},
			Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}, Sample: []string{"httpbin", "--version", "v2"}}
		if err := m.AddWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	weft.Apply(t, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
`)
	vs := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
    - httpbin
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
      weight: 100
`
	weft.Apply(t, vs)
	client := kit.ViaSidecar(m, "curl")
	v2log := filepath.Join(m.LogDir(), "httpbin-v2.log")
	count := func(path, marker string) int {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), marker)
	}
	// Before the v1-only rule propagates the default route spreads over v1
	// and v2, so each round uses a fresh marker.
	round := 0
	meshtest.Eventually(t, "all httpbin traffic on v1", 10*time.Second, func() error {
		round++
		marker := fmt.Sprintf("/headers?mirror-before-%d", round)
		for i := 0; i < 10; i++ {
			if r := kit.Get(t, client, "http://httpbin:8000"+marker, nil); r.Status != 200 {
				return fmt.Errorf("status %d", r.Status)
			}
		}
		if n := count(v2log, marker); n != 0 {
			return fmt.Errorf("v2 received %d requests", n)
		}
		return nil
	})
	weft.Apply(t, vs+`    mirror:
      host: httpbin
      subset: v2
    mirrorPercentage:
      value: 100.0
`)
	marker := "/headers?mirror-after"
	meshtest.Eventually(t, "v2 receives mirrored requests", 10*time.Second, func() error {
		r := kit.Get(t, client, "http://httpbin:8000"+marker, nil)
		if r.Status != 200 {
			return fmt.Errorf("status %d", r.Status)
		}
		if n := count(v2log, marker); n == 0 {
			return fmt.Errorf("no mirrored request in %s yet", v2log)
		}
		return nil
	})
	v1log := filepath.Join(m.LogDir(), "httpbin-v1.log")
	if count(v1log, marker) == 0 {
		t.Errorf("v1 did not serve the request")
	}
}

// TM-08 Ingress Gateways: the Host header selects; a wrong host gets 404.
func TestIngressGateway(t *testing.T) {
	mesh(t)
	weft.Apply(t, kit.Task("ingress-httpbin/httpbin-gateway.yaml"))
	host := map[string]string{"Host": "httpbin.example.com"}
	meshtest.Eventually(t, "httpbin.example.com routed", 10*time.Second, func() error {
		if r := kit.Get(t, kit.Direct, ingressURL("/status/200"), host); r.Status != 200 {
			return fmt.Errorf("/status/200: %d %.100s", r.Status, r.Body)
		}
		return nil
	})
	if r := kit.Get(t, kit.Direct, ingressURL("/status/418"), map[string]string{"Host": "httpbin.example.com:80"}); r.Status != 418 {
		t.Errorf("Host with port: /status/418 gave %d", r.Status)
	}
	if r := kit.Get(t, kit.Direct, ingressURL("/headers"), host); r.Status != 404 {
		t.Errorf("unmatched path: want 404, got %d", r.Status)
	}
	if r := kit.Get(t, kit.Direct, ingressURL("/status/200"), map[string]string{"Host": "wrong.example.com"}); r.Status != 404 {
		t.Errorf("wrong host: want 404, got %d", r.Status)
	}
}
