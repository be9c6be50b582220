package telemetry

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/promtext"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

func meta(name, app, version string) *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: name, Namespace: "default",
		ServiceAccount: "bookinfo-" + app, ClusterID: "Kubernetes", Labels: map[string]string{"app": app, "version": version}}
}

// hop runs one request through a client sidecar's outbound observer and a
// server sidecar's inbound observer, passing headers as the wire would.
func hop(t *testing.T, client, server *Telemetry, status int, flags rflag.Flags) (reqSeen http.Header, respSeen http.Header) {
	t.Helper()
	co, err := client.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "explicit_http_proxy"})
	if err != nil {
		t.Fatal(err)
	}
	so, err := server.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
	r.Header.Set(HeaderPeerMetadata, "spoofed") // the app cannot choose its identity
	ci := &filter.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080"}
	co.Request(r, ci)
	// Upstream: the server sidecar gets the forwarded headers.
	sr := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
	sr.Header = r.Header.Clone()
	si := &filter.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Cluster: "inbound|9080||"}
	so.Request(sr, si)
	reqSeen = sr.Header.Clone()
	sh := http.Header{}
	si.Status = status
	so.Response(sh, si)
	so.Complete(si)
	// Back at the client: the response headers the server sidecar sent.
	ch := sh.Clone()
	ci.Status, ci.Flags, ci.Cluster = status, flags, "outbound|9080|v1|reviews.default.svc.cluster.local"
	co.Response(ch, ci)
	co.Complete(ci)
	return reqSeen, ch
}

func scrape(t *testing.T, tel *Telemetry) string {
	t.Helper()
	var b bytes.Buffer
	if err := tel.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// series finds the line of metric name whose labels include all of want.
func series(text, name string, want map[string]string) (string, bool) {
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(l, k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

func TestMetadataExchangeAndLabels(t *testing.T) {
	client := New(Options{Node: meta("productpage-v1", "productpage", "v1")})
	server := New(Options{Node: meta("reviews-v1", "reviews", "v1")})
	reqSeen, respSeen := hop(t, client, server, 200, 0)
	if _, ok := reqSeen[HeaderPeerMetadata]; ok {
		t.Errorf("server sidecar forwarded the peer metadata to the app")
	}
	if _, ok := respSeen[HeaderPeerMetadata]; ok {
		t.Errorf("client sidecar returned the peer metadata to the app")
	}
	src := scrape(t, client)
	if l, ok := series(src, "istio_requests_total", map[string]string{"reporter": "source",
		"source_workload": "productpage-v1", "source_app": "productpage", "source_version": "v1",
		"destination_workload": "reviews-v1", "destination_app": "reviews", "destination_version": "v1",
		"destination_service": "reviews.default.svc.cluster.local", "destination_service_name": "reviews",
		"destination_service_namespace": "default", "response_code": "200", "response_flags": "-",
		"request_protocol": "http", "connection_security_policy": "unknown", "source_cluster": "Kubernetes",
		"destination_cluster": "Kubernetes", "destination_canonical_revision": "v1"}); !ok || !strings.HasSuffix(l, " 1") {
		t.Errorf("client: no matching istio_requests_total 1 in\n%s", src)
	}
	dst := scrape(t, server)
	if l, ok := series(dst, "istio_requests_total", map[string]string{"reporter": "destination",
		"source_workload": "productpage-v1", "destination_workload": "reviews-v1",
		"destination_service": "reviews.default.svc.cluster.local", "response_code": "200",
		"connection_security_policy": "none", "source_principal": "unknown"}); !ok || !strings.HasSuffix(l, " 1") {
		t.Errorf("server: no matching istio_requests_total 1 in\n%s", dst)
	}
	for _, h := range []string{"istio_request_duration_milliseconds_bucket", "istio_request_bytes_count", "istio_response_bytes_sum"} {
		if !strings.Contains(dst, h+"{") {
			t.Errorf("server scrape lacks %s", h)
		}
	}
	// A second request reuses the series.
	hop(t, client, server, 200, 0)
	hop(t, client, server, 503, rflag.UO)
	src = scrape(t, client)
	if l, _ := series(src, "istio_requests_total", map[string]string{"response_code": "200"}); !strings.HasSuffix(l, " 2") {
		t.Errorf("want 2 requests: %s", l)
	}
	if _, ok := series(src, "istio_requests_total", map[string]string{"response_code": "503", "response_flags": "UO"}); !ok {
		t.Errorf("no 503 UO series:\n%s", src)
	}
}

func TestUnknownPeer(t *testing.T) {
	server := New(Options{Node: meta("reviews-v1", "reviews", "v1")})
	so, _ := server.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080"})
	r := httptest.NewRequest("GET", "http://reviews:9080/", nil)
	r.Header.Set(HeaderPeerMetadata, "!!not base64!!")
	info := &filter.Info{Authority: "reviews:9080", Status: 200}
	so.Request(r, info)
	so.Complete(info)
	if _, ok := series(scrape(t, server), "istio_requests_total", map[string]string{"source_workload": "unknown",
		"source_app": "unknown", "source_canonical_revision": "latest", "destination_workload": "reviews-v1"}); !ok {
		t.Errorf("want an unknown source:\n%s", scrape(t, server))
	}
}

func TestHistogramBuckets(t *testing.T) {
	var h histogram
	for _, v := range []uint64{0, 1, 3, 7000, 5000000} {
		h.observe(v)
	}
	var b bytes.Buffer
	writeHistogram(promtext.NewWriter(&b), "x", `a="b"`, &h)
	text := b.String()
	for _, want := range []string{`x_bucket{a="b",le="0.5"} 1`, `x_bucket{a="b",le="1"} 2`, `x_bucket{a="b",le="5"} 3`,
		`x_bucket{a="b",le="10000"} 4`, `x_bucket{a="b",le="3.6e+06"} 4`, `x_bucket{a="b",le="+Inf"} 5`,
		`x_sum{a="b"} 5007004`, `x_count{a="b"} 5`} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

// slowWriter blocks until released, like a stuck log sink.
type slowWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func fileLog(t *testing.T, path string, filter *accesslogv3.AccessLogFilter) *accesslogv3.AccessLog {
	return fileLogFormat(t, path, "%RESPONSE_CODE% %RESPONSE_FLAGS%\n", filter)
}

func fileLogFormat(t *testing.T, path, format string, filter *accesslogv3.AccessLogFilter) *accesslogv3.AccessLog {
	t.Helper()
	a, err := anypb.New(&filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: format}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", Filter: filter,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}
}

func TestAccessLogNeverBlocks(t *testing.T) {
	w := &slowWriter{release: make(chan struct{})}
	tel := New(Options{Node: meta("curl", "curl", ""), Stdout: w})
	// 256-byte lines: the writer buffers at most 64 KiB (256 lines) before
	// it blocks on the stuck sink, so the queue must overflow.
	line := strings.Repeat("x", 249) + " %RESPONSE_CODE% -\n"
	o, err := tel.HTTP(&hcmv3.HttpConnectionManager{AccessLog: []*accesslogv3.AccessLog{fileLogFormat(t, "/dev/stdout", line, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	const total = sinkQueue + 1000
	done := make(chan struct{})
	go func() {
		for i := 0; i < total; i++ {
			o.Complete(&filter.Info{Status: 200})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a stuck sink")
	}
	dropped := int64(-1)
	tel.Stats(func(name string, v int64) {
		if name == "access_log./dev/stdout.dropped_lines" {
			dropped = v
		}
	})
	if dropped <= 0 {
		t.Errorf("dropped_lines = %d, want > 0", dropped)
	}
	var prom bytes.Buffer
	tel.WritePrometheus(&prom)
	if !strings.Contains(prom.String(), `weft_access_log_dropped_lines{path="/dev/stdout"} `+strconv.FormatInt(dropped, 10)+"\n") {
		t.Errorf("prometheus lacks the dropped counter:\n%s", prom.String())
	}
	close(w.release)
	tel.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := strings.Count(w.buf.String(), " 200 -\n"); n == 0 || int64(n)+dropped != total {
		t.Errorf("written %d + dropped %d != %d", n, dropped, total)
	}
}

func TestAccessLogFilterAndTCP(t *testing.T) {
	var out bytes.Buffer
	tel := New(Options{Node: meta("tcp-echo-v1", "tcp-echo", "v1"), Stdout: &out})
	ge400 := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
		StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
			Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 400, RuntimeKey: "k"}}}}}
	o, err := tel.HTTP(&hcmv3.HttpConnectionManager{AccessLog: []*accesslogv3.AccessLog{fileLog(t, "/dev/stdout", ge400)}})
	if err != nil {
		t.Fatal(err)
	}
	o.Complete(&filter.Info{Status: 200})
	o.Complete(&filter.Info{Status: 404, Flags: rflag.NR})
	to, err := tel.TCP(&tcpv3.TcpProxy{StatPrefix: "inbound|9000||", AccessLog: []*accesslogv3.AccessLog{fileLog(t, "/dev/stdout", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	c := &tcp.Conn{Cluster: "inbound|9000||", Start: time.Now()}
	to.Open(c)
	c.Received.Store(2)
	tel.reportTCP() // a long-lived connection reports periodically
	if l, _ := series(scrape(t, tel), "istio_tcp_received_bytes_total", nil); !strings.HasSuffix(l, " 2") {
		t.Errorf("periodic report: %q", l)
	}
	c.Received.Store(5)
	c.Sent.Store(9)
	to.Close(c)
	tel.reportTCP() // closed: nothing more to report
	tel.Close()
	if got := out.String(); got != "404 NR\n0 -\n" {
		t.Errorf("log = %q, want the 404 and the TCP line only", got)
	}
	text := scrape(t, tel)
	for _, want := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total"} {
		if l, ok := series(text, want, map[string]string{"reporter": "destination", "request_protocol": "tcp",
			"destination_workload": "tcp-echo-v1", "source_workload": "unknown"}); !ok || !strings.HasSuffix(l, " 1") {
			t.Errorf("%s: want 1 in\n%s", want, text)
		}
	}
	if l, _ := series(text, "istio_tcp_received_bytes_total", nil); !strings.HasSuffix(l, " 5") {
		t.Errorf("received bytes: %q", l)
	}
	if l, _ := series(text, "istio_tcp_sent_bytes_total", nil); !strings.HasSuffix(l, " 9") {
		t.Errorf("sent bytes: %q", l)
	}
	if strings.Contains(text, "response_code") && regexp.MustCompile(`istio_tcp_\w+\{[^}]*response_code`).MatchString(text) {
		t.Errorf("TCP series must not carry response_code")
	}
}

func TestAccessLogConfigErrors(t *testing.T) {
	tel := New(Options{})
	defer tel.Close()
	bad, _ := anypb.New(&filev3.FileAccessLog{Path: "/dev/stdout", AccessLogFormat: &filev3.FileAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "%NOT_A_COMMAND%"}}}})
	notFile, _ := anypb.New(&tcpv3.TcpProxy{})
	for name, l := range map[string]*accesslogv3.AccessLog{
		"bad command": {Name: "x", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: bad}},
		"not a file":  {Name: "x", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: notFile}},
	} {
		if _, err := tel.HTTP(&hcmv3.HttpConnectionManager{AccessLog: []*accesslogv3.AccessLog{l}}); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestMergedHandler(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# TYPE app_hits counter\napp_hits 3\n")
	}))
	defer app.Close()
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "istio_x 1\n") })
	srv := httptest.NewServer(MergedHandler(proxy, app.URL, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "istio_x 1\n# TYPE app_hits counter\napp_hits 3\n" {
		t.Errorf("merged = %q", b)
	}
}

func TestServiceOfHost(t *testing.T) {
	for in, want := range map[string]service{
		"reviews:9080":                           {"reviews.default.svc.cluster.local", "reviews", "default"},
		"reviews.other":                          {"reviews.other.svc.cluster.local", "reviews", "other"},
		"details.default.svc.cluster.local:9080": {"details.default.svc.cluster.local", "details", "default"},
		"edition.cnn.com":                        {"edition.cnn.com", "edition.cnn.com", "unknown"},
		"127.0.0.1:80":                           {"127.0.0.1", "127.0.0.1", "unknown"},
		"":                                       {"unknown", "unknown", "unknown"},
	} {
		if got := serviceOfHost(in, "default"); got != want {
			t.Errorf("%q: got %+v, want %+v", in, got, want)
		}
	}
}

func TestGRPCStatusAndBuild(t *testing.T) {
	m := meta("client", "client", "v1")
	m.Version = "1.2.3"
	tel := New(Options{Node: m})
	o, _ := tel.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_7070"})
	r := httptest.NewRequest("POST", "http://greeter:7070/helloworld.Greeter/SayHello", nil)
	r.Header.Set("Content-Type", "application/grpc")
	info := &filter.Info{Authority: "greeter:7070", Cluster: "outbound|7070||greeter.default.svc.cluster.local"}
	o.Request(r, info)
	h := http.Header{"Content-Type": {"application/grpc"}}
	info.Status = 200
	o.Response(h, info)
	h[http.TrailerPrefix+"Grpc-Status"] = []string{"5"} // the router adds trailers at the end
	o.Complete(info)
	text := scrape(t, tel)
	if _, ok := series(text, "istio_requests_total", map[string]string{"request_protocol": "grpc", "grpc_response_status": "5",
		"destination_service": "greeter.default.svc.cluster.local", "response_code": "200"}); !ok {
		t.Errorf("no gRPC series with status 5:\n%s", text)
	}
	var b bytes.Buffer
	tel.WritePrometheus(&b)
	if !strings.Contains(b.String(), `istio_build{component="proxy",tag="1.2.3"} 1`+"\n") {
		t.Errorf("no istio_build:\n%s", b.String())
	}
}

func TestSeriesCapForHostileHosts(t *testing.T) {
	server := New(Options{Node: meta("httpbin-v1", "httpbin", "v1")})
	defer server.Close()
	for i := 0; i < maxSeries+50; i++ {
		server.metrics.recordHTTP(&filter.Info{Status: 200, Authority: fmt.Sprintf("h%d.example", i)}, true, nil, false, "")
	}
	if n := server.metrics.http.size(); n > maxSeries+1 {
		t.Errorf("%d series, want at most %d", n, maxSeries+1)
	}
	var overflow uint64
	server.metrics.http.each(func(s *httpSeries) {
		if strings.Contains(s.labels, `destination_service="unknown"`) {
			overflow += s.requests.Load()
		}
	})
	if overflow != 50 {
		t.Errorf("overflow series counts %d requests, want 50", overflow)
	}
}

func TestMutualTLSLabels(t *testing.T) {
	server := New(Options{Node: meta("httpbin-v1", "httpbin", "v1")})
	defer server.Close()
	so, _ := server.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_8080"})
	u, _ := url.Parse("spiffe://example.org/ns/default/sa/curl")
	own, _ := url.Parse("spiffe://example.org/ns/default/sa/bookinfo-httpbin")
	peer := &x509.Certificate{URIs: []*url.URL{u}}
	info := &filter.Info{Authority: "httpbin:8000", Status: 200, Downstream: &downstream.Info{
		TLS:       &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}, VerifiedChains: [][]*x509.Certificate{{peer}}},
		LocalCert: &x509.Certificate{URIs: []*url.URL{own}}}}
	so.Request(httptest.NewRequest("GET", "http://httpbin:8000/", nil), info)
	so.Complete(info)
	// Both principals come from the certificates (trust domain included),
	// never from the proxy's node metadata.
	if _, ok := series(scrape(t, server), "istio_requests_total", map[string]string{"connection_security_policy": "mutual_tls",
		"source_principal": "spiffe://example.org/ns/default/sa/curl", "reporter": "destination",
		"destination_principal": "spiffe://example.org/ns/default/sa/bookinfo-httpbin"}); !ok {
		t.Errorf("no mutual_tls series:\n%s", scrape(t, server))
	}
	// A certificate the handshake did not verify names nobody.
	unverified := &filter.Info{Authority: "httpbin:8000", Status: 201, Downstream: &downstream.Info{
		TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}}}
	so.Request(httptest.NewRequest("GET", "http://httpbin:8000/", nil), unverified)
	so.Complete(unverified)
	if _, ok := series(scrape(t, server), "istio_requests_total", map[string]string{"connection_security_policy": "none",
		"source_principal": "unknown", "response_code": "201"}); !ok {
		t.Errorf("unverified peer certificate counted as mutual TLS:\n%s", scrape(t, server))
	}
}
