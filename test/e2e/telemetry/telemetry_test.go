package telemetry

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// sum adds the values of every series of name whose labels include want.
func sum(text, name string, want map[string]string) (float64, int) {
	var total float64
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(l, ","+k+`="`+v+`"`) && !strings.Contains(l, "{"+k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			total += v
			n++
		}
	}
	return total, n
}

func wantSeries(t *testing.T, m *demo.Mesh, workload, port string, labels map[string]string) {
	t.Helper()
	meshtest.Eventually(t, fmt.Sprintf("%s:%s istio_requests_total%v", workload, port, labels), 10*time.Second, func() error {
		text := scrape(t, m, workload, port)
		if v, _ := sum(text, "istio_requests_total", labels); v < 1 {
			var have []string
			for _, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(l, "istio_requests_total{") {
					have = append(have, l)
				}
			}
			return fmt.Errorf("no series; have:\n%s", strings.Join(have, "\n"))
		}
		return nil
	})
}

// TestBookinfoMetrics: after traffic through the ingress gateway, both
// ends of each hop report istio_requests_total with Istio's labels.
func TestBookinfoMetrics(t *testing.T) {
	m := mesh(t)
	// productpage answers 200 even when details or reviews fail: wait for
	// a whole page, or the hops below may have seen only 503 UH (CI once
	// ran them before productpage's sidecar had details' endpoint).
	meshtest.Eventually(t, "a whole productpage through the ingress gateway", 30*time.Second, func() error {
		r := kit.Get(t, kit.Direct, "http://"+ingressIP+":8080/productpage", nil)
		if r.Status != 200 {
			return fmt.Errorf("status %d", r.Status)
		}
		for _, bad := range []string{"Error fetching product details", "Error fetching product reviews"} {
			if strings.Contains(r.Body, bad) {
				return fmt.Errorf("status 200 with %q", bad)
			}
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		kit.Get(t, kit.Direct, "http://"+ingressIP+":8080/productpage", nil)
	}
	// Gateway → productpage: the gateway reports as source.
	wantSeries(t, m, "istio-ingressgateway", "15090", map[string]string{"reporter": "source",
		"source_workload": "istio-ingressgateway", "source_workload_namespace": "istio-system",
		"destination_workload": "productpage-v1", "destination_service": "productpage.default.svc.cluster.local",
		"destination_service_name": "productpage", "response_code": "200", "response_flags": "-"})
	// productpage's sidecar reports the same hop as destination. The Host
	// it sees is the external client's (ingressIP:8080); the service comes
	// from the inbound cluster's istio.services metadata, as in Istio.
	wantSeries(t, m, "productpage-v1", "15090", map[string]string{"reporter": "destination",
		"source_workload": "istio-ingressgateway", "source_workload_namespace": "istio-system",
		"destination_workload": "productpage-v1", "destination_service": "productpage.default.svc.cluster.local",
		"destination_service_name": "productpage", "destination_service_namespace": "default",
		"response_code": "200", "response_flags": "-"})
	if v, _ := sum(scrape(t, m, "productpage-v1", "15090"), "istio_requests_total", map[string]string{"reporter": "destination",
		"destination_service": ingressIP}); v != 0 {
		t.Errorf("productpage's destination reporter named the service after the client's Host %s", ingressIP)
	}
	for _, hop := range []struct{ client, server, service string }{
		{"productpage-v1", "details-v1", "details"},
		{"productpage-v1", "reviews-v1", "reviews"},
	} {
		svc := hop.service + ".default.svc.cluster.local"
		if hop.service == "reviews" {
			// The route picks any reviews version: find the one that served.
			text := scrape(t, m, hop.client, "15090")
			for _, v := range []string{"reviews-v1", "reviews-v2", "reviews-v3"} {
				if n, _ := sum(text, "istio_requests_total", map[string]string{"destination_workload": v}); n > 0 {
					hop.server = v
					break
				}
			}
		}
		wantSeries(t, m, hop.client, "15090", map[string]string{"reporter": "source",
			"source_workload": hop.client, "source_app": "productpage", "source_version": "v1",
			"destination_workload": hop.server, "destination_service": svc, "destination_service_name": hop.service,
			"destination_service_namespace": "default", "response_code": "200", "request_protocol": "http",
			"connection_security_policy": "unknown",
			"destination_principal":      "spiffe://cluster.local/ns/default/sa/bookinfo-" + hop.service})
		// Sidecars talk mutual TLS (auto mTLS): the server names the
		// caller by its certificate's SPIFFE id.
		wantSeries(t, m, hop.server, "15090", map[string]string{"reporter": "destination",
			"source_workload": hop.client, "source_app": "productpage", "destination_workload": hop.server,
			"destination_service": svc, "response_code": "200", "connection_security_policy": "mutual_tls",
			"source_principal":      "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
			"destination_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-" + hop.service})
		// The merged port serves the same series.
		wantSeries(t, m, hop.server, "15020", map[string]string{"reporter": "destination", "source_workload": hop.client})
	}
	text := scrape(t, m, "details-v1", "15090")
	if _, n := sum(text, "istio_request_duration_milliseconds_bucket", map[string]string{"le": "+Inf", "reporter": "destination"}); n == 0 {
		t.Errorf("details: no istio_request_duration_milliseconds histogram")
	}
	// The app never sees the exchange headers: productpage's page renders
	// details fetched through it, and the sidecar strips them both ways,
	// which the unit tests check; here the exchange must have happened.
	if v, _ := sum(text, "istio_requests_total", map[string]string{"source_workload": "unknown"}); v != 0 {
		t.Errorf("details saw requests from an unknown source:\n%s", text)
	}
}

// findLog waits for the access log line of workload's sidecar containing
// marker and returns its fields.
func findLog(t *testing.T, m *demo.Mesh, workload, marker string) []string {
	t.Helper()
	var f []string
	meshtest.Eventually(t, workload+" access log line with "+marker, 10*time.Second, func() error {
		sc := bufio.NewScanner(strings.NewReader(proxyLog(t, m, workload)))
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "[") && strings.Contains(l, marker) {
				f = meshtest.AccessLogFields(l)
				if len(f) != meshtest.LogFieldCount {
					return fmt.Errorf("%d fields, want %d: %q", len(f), meshtest.LogFieldCount, l)
				}
				return nil
			}
		}
		return fmt.Errorf("not found")
	})
	return f
}

var startTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func checkFields(t *testing.T, what string, got []string, want map[int]string) {
	t.Helper()
	if !startTime.MatchString(got[meshtest.LogTime]) {
		t.Errorf("%s: start time %q", what, got[meshtest.LogTime])
	}
	if _, err := strconv.Atoi(got[meshtest.LogDuration]); err != nil {
		t.Errorf("%s: duration %q", what, got[meshtest.LogDuration])
	}
	for i, w := range want {
		if strings.HasPrefix(w, "~") {
			if !regexp.MustCompile(w[1:]).MatchString(got[i]) {
				t.Errorf("%s: field %d = %q, want match %s", what, i, got[i], w[1:])
			}
			continue
		}
		if got[i] != w {
			t.Errorf("%s: field %d = %q, want %q (line %q)", what, i, got[i], w, got)
		}
	}
}

const ipPort = `~^127\.\d+\.\d+\.\d+:\d+$`

// TestAccessLogsAndFlags: a 200, a 504 UT, a fault abort 500 FI, a 404 NR
// and a TCP connection, each logged with the right fields and counted with
// the right response_flags.
func TestAccessLogsAndFlags(t *testing.T) {
	m := mesh(t)
	weft.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin]
  http:
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: httpbin}}]
  - timeout: 0.5s
    route: [{destination: {host: httpbin}}]
`)
	curl := kit.ViaSidecar(m, "curl")
	httpbin := m.Workload("httpbin-v1")
	clusterOut := "outbound|8000||httpbin.default.svc.cluster.local"

	// 200, once the VirtualService is in place (the abort answers).
	meshtest.Eventually(t, "fault abort active", 20*time.Second, func() error {
		if r := kit.Get(t, curl, "http://httpbin:8000/get", map[string]string{"x-fault": "abort"}); r.Status != 500 {
			return fmt.Errorf("status %d", r.Status)
		}
		return nil
	})
	id := fmt.Sprintf("telemetry-200-%d", time.Now().UnixNano())
	if r := kit.Get(t, curl, "http://httpbin:8000/get", map[string]string{"x-request-id": id, "user-agent": "weft-e2e"}); r.Status != 200 {
		t.Fatalf("GET /get: %d %s", r.Status, r.Body)
	}
	f := findLog(t, m, "curl", id)
	checkFields(t, "200 client", f, map[int]string{meshtest.LogRequestLine: "GET /get HTTP/1.1", meshtest.LogCode: "200", meshtest.LogFlags: "-",
		meshtest.LogDetails: "via_upstream", meshtest.LogTermination: "-", meshtest.LogFailure: "-", meshtest.LogBytesIn: "0", meshtest.LogBytesOut: "~^[1-9][0-9]*$",
		meshtest.LogServiceTime: "~^[0-9]+$", meshtest.LogUserAgent: "weft-e2e", meshtest.LogRequestID: id, meshtest.LogAuthority: "httpbin:8000",
		meshtest.LogUpstreamHost: "~^" + httpbin.IP + ":8080$", meshtest.LogCluster: clusterOut, meshtest.LogDownstreamLocal: ipPort, meshtest.LogDownstreamRemote: ipPort, meshtest.LogSNI: "-"})
	f = findLog(t, m, "httpbin-v1", id)
	checkFields(t, "200 server", f, map[int]string{meshtest.LogRequestLine: "GET /get HTTP/1.1", meshtest.LogCode: "200", meshtest.LogFlags: "-",
		meshtest.LogDetails: "via_upstream", meshtest.LogRequestID: id, meshtest.LogAuthority: "httpbin:8000", meshtest.LogUpstreamHost: "~^" + httpbin.AppIP + ":8080$",
		meshtest.LogCluster: "~^inbound\\|", meshtest.LogDownstreamLocal: "~^" + httpbin.IP + ":8080$"})

	// 504 UT: the route's 0.5s timeout against a 2s delay.
	id = fmt.Sprintf("telemetry-504-%d", time.Now().UnixNano())
	if r := kit.Get(t, curl, "http://httpbin:8000/delay/2", map[string]string{"x-request-id": id}); r.Status != 504 {
		t.Fatalf("GET /delay/2: %d %s", r.Status, r.Body)
	}
	f = findLog(t, m, "curl", id)
	checkFields(t, "504", f, map[int]string{meshtest.LogRequestLine: "GET /delay/2 HTTP/1.1", meshtest.LogCode: "504", meshtest.LogFlags: "UT",
		meshtest.LogDetails: "upstream_response_timeout", meshtest.LogCluster: clusterOut, meshtest.LogAuthority: "httpbin:8000", meshtest.LogRequestID: id})

	// 500 FI: the fault filter aborts before any upstream.
	id = fmt.Sprintf("telemetry-fi-%d", time.Now().UnixNano())
	if r := kit.Get(t, curl, "http://httpbin:8000/get", map[string]string{"x-request-id": id, "x-fault": "abort"}); r.Status != 500 {
		t.Fatalf("fault abort: %d", r.Status)
	}
	f = findLog(t, m, "curl", id)
	checkFields(t, "FI", f, map[int]string{meshtest.LogCode: "500", meshtest.LogFlags: "FI", meshtest.LogDetails: "fault_filter_abort", meshtest.LogUpstreamHost: "-"})

	// 404 NR at the ingress gateway: no route for the path.
	id = fmt.Sprintf("telemetry-404-%d", time.Now().UnixNano())
	if r := kit.Get(t, kit.Direct, "http://"+ingressIP+":8080/no-such-page", map[string]string{"x-request-id": id}); r.Status != 404 {
		t.Fatalf("GET /no-such-page: %d", r.Status)
	}
	f = findLog(t, m, "istio-ingressgateway", id)
	checkFields(t, "404", f, map[int]string{meshtest.LogRequestLine: "GET /no-such-page HTTP/1.1", meshtest.LogCode: "404", meshtest.LogFlags: "NR",
		meshtest.LogDetails: "route_not_found", meshtest.LogUpstreamHost: "-", meshtest.LogCluster: "-", meshtest.LogBytesIn: "0", meshtest.LogServiceTime: "-",
		meshtest.LogDownstreamLocal: "~^" + regexp.QuoteMeta(ingressIP) + ":8080$"})

	// TCP: straight to tcp-echo's inbound listener.
	echo := m.Workload("tcp-echo-v1")
	c, err := net.DialTimeout("tcp", net.JoinHostPort(echo.IP, "9000"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "hello\n")
	reply, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.Contains(reply, "hello") {
		t.Fatalf("tcp-echo reply %q: %v", reply, err)
	}
	f = findLog(t, m, "tcp-echo-v1", " "+local+" ")
	checkFields(t, "tcp", f, map[int]string{meshtest.LogRequestLine: "- - -", meshtest.LogCode: "0", meshtest.LogFlags: "-", meshtest.LogBytesIn: "6",
		meshtest.LogBytesOut: strconv.Itoa(len(reply)), meshtest.LogUpstreamHost: "~^" + echo.AppIP + ":9000$", meshtest.LogCluster: "inbound|9000||",
		meshtest.LogDownstreamLocal: "~^" + echo.IP + ":9000$", meshtest.LogDownstreamRemote: local, meshtest.LogAuthority: "-", meshtest.LogRequestID: "-", meshtest.LogRoute: "-"})

	// The same outcomes as metrics, with their flags.
	text := scrape(t, m, "curl", "15090")
	for _, c := range []struct{ code, flags string }{{"200", "-"}, {"504", "UT"}, {"500", "FI"}} {
		if v, _ := sum(text, "istio_requests_total", map[string]string{"reporter": "source", "source_workload": "curl",
			"destination_service": "httpbin.default.svc.cluster.local", "response_code": c.code, "response_flags": c.flags}); v < 1 {
			t.Errorf("curl: no istio_requests_total{response_code=%q,response_flags=%q}", c.code, c.flags)
		}
	}
	meshtest.Eventually(t, "tcp-echo TCP metrics", 5*time.Second, func() error {
		text := scrape(t, m, "tcp-echo-v1", "15090")
		for _, name := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
			"istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total"} {
			if v, _ := sum(text, name, map[string]string{"reporter": "destination", "request_protocol": "tcp",
				"destination_workload": "tcp-echo-v1"}); v < 1 {
				return fmt.Errorf("%s missing", name)
			}
		}
		return nil
	})
}

// TestCircuitBreakingStats: the circuit-breaking task's overflow shows in
// the Envoy-named stats (weft proxy-stats), as 503 UO in istio metrics and
// in the access log.
func TestCircuitBreakingStats(t *testing.T) {
	m := mesh(t)
	weft.Apply(t, kit.Task("circuit-breaking/destination-rule-httpbin.yaml"))
	curl := kit.ViaSidecar(m, "curl")
	var overflow atomic.Int64
	meshtest.Eventually(t, "some requests overflow", 20*time.Second, func() error {
		var wg sync.WaitGroup
		for c := 0; c < 3; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if r := kit.Get(t, curl, "http://httpbin:8000/get", nil); r.Status == 503 && strings.Contains(r.Body, "overflow") {
						overflow.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if overflow.Load() == 0 {
			return fmt.Errorf("no overflow yet")
		}
		return nil
	})
	out, err := weft.Output(t, "", "proxy-stats", "curl", "--filter", `upstream_rq_pending_overflow$`)
	if err != nil {
		t.Fatalf("weft proxy-stats: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`(?m)^cluster\.outbound\|8000\|\|httpbin\.default\.svc\.cluster\.local\.upstream_rq_pending_overflow: ([0-9]+)$`)
	mm := re.FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("proxy-stats output lacks httpbin's upstream_rq_pending_overflow:\n%s", out)
	}
	if n, _ := strconv.Atoi(mm[1]); n == 0 {
		t.Errorf("upstream_rq_pending_overflow = 0 after %d overflows", overflow.Load())
	}
	if strings.Contains(out, "upstream_rq_total") {
		t.Errorf("--filter let other stats through:\n%s", out)
	}
	text := scrape(t, m, "curl", "15090")
	if v, _ := sum(text, "istio_requests_total", map[string]string{"response_code": "503", "response_flags": "UO",
		"destination_service_name": "httpbin"}); v < 1 {
		t.Errorf("curl: no 503 UO series")
	}
	f := findLog(t, m, "curl", `" 503 UO `)
	checkFields(t, "503 UO", f, map[int]string{meshtest.LogRequestLine: "GET /get HTTP/1.1", meshtest.LogCode: "503", meshtest.LogFlags: "UO",
		meshtest.LogDetails: "~overflow", meshtest.LogAuthority: "httpbin:8000", meshtest.LogCluster: "outbound|8000||httpbin.default.svc.cluster.local",
		meshtest.LogRequestID: "~^[0-9a-f-]{36}$", meshtest.LogDownstreamRemote: ipPort})
}

// TestDebugEndpoints: the control plane's /debug pages answer with what
// the mesh holds.
func TestDebugEndpoints(t *testing.T) {
	mesh(t)
	for path, want := range map[string]string{
		"/debug":                          "/debug/registryz",
		"/debug/syncz":                    "productpage-v1",
		"/debug/configz":                  `"kind": "Gateway"`,
		"/debug/registryz":                "details.default.svc.cluster.local",
		"/debug/config_dump?proxyID=curl": "outbound|8000||httpbin.default.svc.cluster.local",
	} {
		r := kit.Get(t, kit.Direct, "http://"+monitorAddr+path, nil)
		if r.Status != 200 || !strings.Contains(r.Body, want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.400s", path, r.Status, want, r.Body)
		}
	}
	if r := kit.Get(t, kit.Direct, "http://"+monitorAddr+"/debug/config_dump", nil); r.Status != 400 {
		t.Errorf("config_dump without proxyID: %d, want 400", r.Status)
	}
}
