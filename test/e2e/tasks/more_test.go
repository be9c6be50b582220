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
	"github.com/weftmesh/weft/internal/node"
)

var (
	tcpEchoAllV1 = task("tcp-traffic-shifting-all-v1/tcp-echo-all-v1.yaml")
	tcpEcho20v2  = task("tcp-traffic-shifting-20-v2/tcp-echo-20-v2.yaml")
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
	apply(t, tcpEchoAllV1)
	eventually(t, 10*time.Second, "tcp-echo all v1", func() error {
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
	apply(t, tcpEcho20v2)
	eventually(t, 10*time.Second, "v2 appears", func() error {
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
	apply(t, allV1)
	apply(t, `
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
	apply(t, `
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
	eventually(t, 10*time.Second, "stars after a 2s delay", func() error {
		r := productpage(t, "")
		if !strings.Contains(r.body, star) || r.elapsed < 2*time.Second {
			return fmt.Errorf("reviews %s, %v", reviewsVersion(r.body), r.elapsed)
		}
		return nil
	})
	apply(t, `
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
	eventually(t, 10*time.Second, "reviews unavailable after 0.5s timeouts", func() error {
		r := productpage(t, "")
		if !strings.Contains(r.body, "Sorry, product reviews are currently unavailable for this book.") {
			return fmt.Errorf("status %d, reviews %s after %v", r.status, reviewsVersion(r.body), r.elapsed)
		}
		// Istio: about 1s, productpage retries its reviews call once (2 × 0.5s).
		if r.elapsed < 900*time.Millisecond || r.elapsed > 1800*time.Millisecond {
			return fmt.Errorf("page took %v, want about 1s", r.elapsed)
		}
		t.Logf("page with a 0.5s reviews timeout took %v", r.elapsed)
		return nil
	})
	m := theMesh
	r := get(t, viaSidecar(m, "productpage-v1"), "http://reviews:9080/reviews/0", nil)
	if r.status != 504 || strings.TrimSpace(r.body) != "upstream request timeout" {
		t.Errorf("direct reviews call: want 504 \"upstream request timeout\", got %d %q after %v", r.status, r.body, r.elapsed)
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
	apply(t, `
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
	apply(t, `
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
	client := viaSidecar(m, "curl")
	eventually(t, 10*time.Second, "retried request succeeds", func() error {
		r := get(t, client, "http://flaky:8000/", map[string]string{"x-request-id": fmt.Sprintf("retry-%d", time.Now().UnixNano())})
		if r.status != 200 {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return nil
	})
	id := "retry-final"
	r := get(t, client, "http://flaky:8000/", map[string]string{"x-request-id": id})
	f.mu.Lock()
	seen := append([]string(nil), f.attempts[id]...)
	f.mu.Unlock()
	if r.status != 200 || strings.Join(seen, ",") != "1,2,3" {
		t.Fatalf("want 200 after attempts 1,2,3; got %d after attempts %v", r.status, seen)
	}
}

// TM-06 Circuit Breaking: maxConnections 1 and http1MaxPendingRequests 1, 3
// concurrent clients × 30 requests → some 503 overflow, the rest 200.
func TestCircuitBreaking(t *testing.T) {
	m := mesh(t)
	apply(t, task("circuit-breaking/destination-rule-httpbin.yaml"))
	client := viaSidecar(m, "curl")
	var ok, overflow, other atomic.Int64
	eventually(t, 20*time.Second, "some requests overflow", func() error {
		ok.Store(0)
		overflow.Store(0)
		other.Store(0)
		var wg sync.WaitGroup
		for c := 0; c < 3; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					r := get(t, client, "http://httpbin:8000/get", nil)
					switch {
					case r.status == 200:
						ok.Add(1)
					case r.status == 503 && strings.Contains(r.body, "overflow"):
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
	stats := get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload("curl").AdminURL()+"/stats", nil)
	if !strings.Contains(stats.body, "outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow") {
		t.Errorf("curl sidecar /stats lacks httpbin's upstream_rq_pending_overflow:\n%.500s", stats.body)
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
	apply(t, `
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
	apply(t, vs)
	client := viaSidecar(m, "curl")
	v2log := filepath.Join(m.LogDir(), "httpbin-v2.log")
	count := func(path, marker string) int {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), marker)
	}
	// Before the v1-only rule propagates the default route spreads over v1
	// and v2, so each round uses a fresh marker.
	round := 0
	eventually(t, 10*time.Second, "all httpbin traffic on v1", func() error {
		round++
		marker := fmt.Sprintf("/headers?mirror-before-%d", round)
		for i := 0; i < 10; i++ {
			if r := get(t, client, "http://httpbin:8000"+marker, nil); r.status != 200 {
				return fmt.Errorf("status %d", r.status)
			}
		}
		if n := count(v2log, marker); n != 0 {
			return fmt.Errorf("v2 received %d requests", n)
		}
		return nil
	})
	apply(t, vs+`    mirror:
      host: httpbin
      subset: v2
    mirrorPercentage:
      value: 100.0
`)
	marker := "/headers?mirror-after"
	eventually(t, 10*time.Second, "v2 receives mirrored requests", func() error {
		r := get(t, client, "http://httpbin:8000"+marker, nil)
		if r.status != 200 {
			return fmt.Errorf("status %d", r.status)
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
	apply(t, task("ingress-httpbin/httpbin-gateway.yaml"))
	host := map[string]string{"Host": "httpbin.example.com"}
	eventually(t, 10*time.Second, "httpbin.example.com routed", func() error {
		if r := get(t, ingressClient, ingressURL("/status/200"), host); r.status != 200 {
			return fmt.Errorf("/status/200: %d %.100s", r.status, r.body)
		}
		return nil
	})
	if r := get(t, ingressClient, ingressURL("/status/418"), map[string]string{"Host": "httpbin.example.com:80"}); r.status != 418 {
		t.Errorf("Host with port: /status/418 gave %d", r.status)
	}
	if r := get(t, ingressClient, ingressURL("/headers"), host); r.status != 404 {
		t.Errorf("unmatched path: want 404, got %d", r.status)
	}
	if r := get(t, ingressClient, ingressURL("/status/200"), map[string]string{"Host": "wrong.example.com"}); r.status != 404 {
		t.Errorf("wrong host: want 404, got %d", r.status)
	}
}
