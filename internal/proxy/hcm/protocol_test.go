package hcm

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// tcpEcho echoes bytes on each connection, prefixed once by "echo:".
func tcpEcho(t *testing.T) string { return meshtest.TCPEcho(t, "echo:") }

func TestConnect(t *testing.T) {
	echoAddr := tcpEcho(t)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "tcp", addrs: []string{echoAddr}}},
		routes: rc(vhost(&routev3.Route{Name: "connect", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{
			ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}}, Action: toCluster("tcp")}, rt("http", "/", toCluster("tcp"))))})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", echoAddr, echoAddr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 9)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "echo:ping" {
		t.Fatalf("tunnel read %q %v", buf, err)
	}
	c.(*net.TCPConn).CloseWrite()
	rest, _ := io.ReadAll(br)
	if len(rest) != 0 {
		t.Fatalf("trailing %q", rest)
	}
	info := p.nextInfo(t)
	if info.Status != 200 || info.BytesIn != 4 || info.BytesOut != 9 {
		t.Errorf("info %+v", info)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			http.Error(w, "not an upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Path: " + r.URL.Path + "\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("ws:" + line)
		brw.Flush()
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("X-Path") != "/chat" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ws:hello\n" {
		t.Fatalf("got %q %v", line, err)
	}
}

func rawRequest(t *testing.T, addr, req string) *http.Response {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestMalformedAndOversized(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
		mutateHCM: func(h *hcmv3HCM) { h.MaxRequestHeadersKb = wrapperspb.UInt32(8) }})
	if r := rawRequest(t, p.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 9000)+"\r\n\r\n"); r.StatusCode != 431 {
		t.Errorf("oversized headers: %d", r.StatusCode)
	}
	if r := rawRequest(t, p.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Ok: "+strings.Repeat("a", 6000)+"\r\n\r\n"); r.StatusCode != 200 {
		t.Errorf("headers under the limit: %d", r.StatusCode)
	}
	if r := rawRequest(t, p.addr, "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"); r.StatusCode != 400 {
		t.Errorf("malformed: %d", r.StatusCode)
	}
}

func TestAbsoluteURIProxyRequest(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(&routev3.VirtualHost{Name: "svc", Domains: []string{"svc.example:8000"}, Routes: []*routev3.Route{rt("r", "/", toCluster("a"))}})})
	proxyURL, _ := url.Parse("http://" + p.addr)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://svc.example:8000/path")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "a:" || resp.Header.Get("X-Seen-Path") != "/path" || resp.Header.Get("X-Seen-Host") != "svc.example:8000" {
		t.Fatalf("got %d %q %v", resp.StatusCode, b, resp.Header)
	}
}

func h2cClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
}

func TestH2CDownstream(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	c := h2cClient()
	for i := 0; i < 3; i++ {
		resp, err := c.Get("http://" + p.addr + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != "a:" {
			t.Fatalf("got %d %s %q", resp.StatusCode, resp.Proto, b)
		}
	}
	if info := p.nextInfo(t); info.Protocol != "HTTP/2.0" {
		t.Errorf("protocol %q", info.Protocol)
	}
}

// echoService is a bidirectional-streaming test service.
type echoService struct {
	testpb.UnimplementedTestServiceServer
}

func (echoService) FullDuplexCall(s testpb.TestService_FullDuplexCallServer) error {
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

// flakyUnary fails the first n UnaryCalls with UNAVAILABLE.
type flakyUnary struct {
	echoService
	mu    sync.Mutex
	n     int
	calls int
}

func (f *flakyUnary) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.n {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

// istioRetry is the retry policy Istio puts on every HTTP route.
func istioRetry(a *routev3.RouteAction) {
	a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: wrapperspb.UInt32(2), RetriableStatusCodes: []uint32{503}, HostSelectionRetryMaxAttempts: 5,
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}
}

func TestGRPCWithIstioRetryPolicy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc := &flakyUnary{n: 1}
	testpb.RegisterTestServiceServer(srv, svc)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "g", addrs: []string{ln.Addr().String()}, h2: true}},
		routes: rc(vhost(rt("grpc", "/", toCluster("g", istioRetry)))), opts: Options{Sleep: noSleep}})
	cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := testpb.NewTestServiceClient(cc)
	// UNAVAILABLE (a trailers-only response) is retried with the request
	// body replayed.
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("x")}})
	if err != nil || string(resp.GetPayload().GetBody()) != "x" || svc.calls != 2 {
		t.Fatalf("unary: %v %v after %d calls", resp, err, svc.calls)
	}
	// A bidirectional stream must flow message by message although the
	// route is retriable (the body is never waited for).
	d, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := d.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte{byte('a' + i)}}}); err != nil {
			t.Fatal(err)
		}
		if m, err := d.Recv(); err != nil || m.GetPayload().GetBody()[0] != byte('a'+i) {
			t.Fatalf("duplex %d: %v %v", i, m, err)
		}
	}
	d.CloseSend()
	if _, err := d.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	testpb.RegisterTestServiceServer(srv, echoService{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "g", addrs: []string{ln.Addr().String()}, h2: true}},
		routes: rc(vhost(rt("grpc", "/", toCluster("g"))))})
	cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Unary.
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
	// Errors come back as trailers.
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v", err)
	}
	// Server streaming: the proxy must flush each message.
	w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("watch 1: %v %v", m, err)
	}
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch 2: %v %v", m, err)
	}
	// Bidirectional streaming, message by message.
	d, err := testpb.NewTestServiceClient(cc).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		body := []byte(fmt.Sprintf("msg-%d", i))
		if err := d.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatal(err)
		}
		m, err := d.Recv()
		if err != nil || string(m.GetPayload().GetBody()) != string(body) {
			t.Fatalf("duplex %d: %v %v", i, m, err)
		}
	}
	d.CloseSend()
	if _, err := d.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

func TestGRPCLocalReplyIsGRPCStatus(t *testing.T) {
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "g"}}, routes: rc(vhost(rt("grpc", "/", toCluster("g"))))})
	cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no healthy upstream") {
		t.Fatalf("got %v", err)
	}
}

func TestCircuitBreakerOverflow(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	p := startProxy(t, proxyConfig{routes: rc(vhost(rt("r", "/", toCluster("a")))),
		clusters: []upstream{{name: "a", addrs: []string{be}, mutate: func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
				MaxRequests: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1), MaxConnections: wrapperspb.UInt32(1)}}}
		}}}})
	c := client()
	var wg sync.WaitGroup
	wg.Add(1)
	var first int
	go func() {
		defer wg.Done()
		resp, _ := get(t, c, "http://"+p.addr+"/")
		first = resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("first request never arrived")
	}
	resp, body := get(t, c, "http://"+p.addr+"/")
	close(release)
	wg.Wait()
	if resp.StatusCode != 503 || body != "upstream connect error or disconnect/reset before headers. reset reason: overflow" || first != 200 {
		t.Fatalf("got %d %q (first %d)", resp.StatusCode, body, first)
	}
	var flags []rflag.Flags
	for i := 0; i < 2; i++ {
		flags = append(flags, p.nextInfo(t).Flags)
	}
	if flags[0] != rflag.UO && flags[1] != rflag.UO {
		t.Errorf("flags %v", flags)
	}
}

func TestCORS(t *testing.T) {
	be := backend(t, echo("a"))
	vh := vhost(rt("r", "/", toCluster("a")))
	vh.TypedPerFilterConfig = map[string]*anypbAny{"envoy.filters.http.cors": mustAny(t, &corsv3CorsPolicy{
		AllowOriginStringMatch: []*matcherv3StringMatcher{{MatchPattern: &matcherv3StringMatcher_Exact{Exact: "https://ok.example"}}},
		AllowMethods:           "GET,POST", AllowHeaders: "x-custom", ExposeHeaders: "x-backend", MaxAge: "600",
		AllowCredentials: wrapperspb.Bool(true)})}
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vh)})
	c := client()
	req, _ := http.NewRequest("OPTIONS", "http://"+p.addr+"/", nil)
	req.Header.Set("Origin", "https://ok.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "GET,POST" || resp.Header.Get("Access-Control-Max-Age") != "600" ||
		resp.Header.Get("X-Backend") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, c, "http://"+p.addr+"/", "Origin", "https://ok.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" || resp.Header.Get("Access-Control-Expose-Headers") != "x-backend" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("simple: %v", resp.Header)
	}
	resp, _ = get(t, c, "http://"+p.addr+"/", "Origin", "https://evil.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin got %v", resp.Header)
	}
}

func TestPassthroughOriginalDst(t *testing.T) {
	be := backend(t, echo("direct"))
	p := startProxy(t, proxyConfig{routes: rc(vhost(rt("allow_any", "/", toCluster("PassthroughCluster")))),
		clusters: []upstream{{name: "PassthroughCluster", mutate: func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
			c.LoadAssignment = nil
		}}}})
	proxyURL, _ := url.Parse("http://" + p.addr)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + be + "/through")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "direct:" || resp.Header.Get("X-Seen-Path") != "/through" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	if info := p.nextInfo(t); info.Host != be {
		t.Errorf("upstream host %q, want %q", info.Host, be)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxy.test"},
		DNSNames: []string{"proxy.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLSWithALPN(t *testing.T) {
	be := backend(t, echo("a"))
	for _, proto := range []string{"h2", "http/1.1"} {
		p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a")))),
			tls: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{proto}}})
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}}, ForceAttemptHTTP2: proto == "h2"}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + p.addr + "/tls")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		wantMajor := 1
		if proto == "h2" {
			wantMajor = 2
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != wantMajor || resp.Header.Get("X-Seen-X-Forwarded-Proto") != "https" {
			t.Errorf("%s: %d %s xfp=%q", proto, resp.StatusCode, resp.Proto, resp.Header.Get("X-Seen-X-Forwarded-Proto"))
		}
	}
}

func TestExpectContinueAndChunkedUpload(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d expect=%q", n, r.Header.Get("Expect"))
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a", istioRetry))))})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != `5 expect=""` {
		t.Fatalf("got %q", b)
	}
	// A 1 MiB chunked upload streams through (too big to retry, still sent).
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for i := 0; i < 16; i++ {
			pw.Write(chunk)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/", pr)
	r2, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r2.Body)
	r2.Body.Close()
	if string(b) != `1048576 expect=""` {
		t.Fatalf("chunked: %q", b)
	}
}

func TestCodecRules(t *testing.T) {
	be := backend(t, echo("a"))
	routes := rc(vhost(rt("r", "/", toCluster("a"))))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes})
	if r := rawRequest(t, p.addr, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); r.StatusCode != 426 {
		t.Errorf("HTTP/1.0 by default: %d", r.StatusCode)
	}
	var many strings.Builder
	for i := 0; i < 101; i++ {
		fmt.Fprintf(&many, "X-H%d: v\r\n", i)
	}
	if r := rawRequest(t, p.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+many.String()+"\r\n"); r.StatusCode != 431 {
		t.Errorf("101 headers: %d", r.StatusCode)
	}
	p2 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes,
		mutateHCM: func(h *hcmv3HCM) {
			h.HttpProtocolOptions = &corev3Http1Options{AcceptHttp_10: true}
			h.CommonHttpProtocolOptions = &corev3HttpOptions{HeadersWithUnderscoresAction: corev3DropHeader}
		}})
	if r := rawRequest(t, p2.addr, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); r.StatusCode != 200 {
		t.Errorf("HTTP/1.0 accepted: %d", r.StatusCode)
	}
	r := rawRequest(t, p2.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Removed: ok\r\nx_under: dropped\r\n\r\n")
	if r.StatusCode != 200 || r.Header.Get("X-Seen-X-Removed") != "ok" || r.Header.Get("X-Seen-Underscore") != "" {
		t.Errorf("underscore drop: %d %v", r.StatusCode, r.Header)
	}
	p3 := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: routes})
	if r := rawRequest(t, p3.addr, "GET / HTTP/1.1\r\nHost: x\r\nx_under: kept\r\n\r\n"); r.Header.Get("X-Seen-Underscore") != "kept" {
		t.Errorf("underscore allowed by default: %v", r.Header)
	}
}

func TestH2Connect(t *testing.T) {
	echoAddr := tcpEcho(t)
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "tcp", addrs: []string{echoAddr}}},
		routes: rc(vhost(&routev3.Route{Name: "connect", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{
			ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}}, Action: toCluster("tcp")}))})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("CONNECT", "http://"+p.addr, pr)
	req.Host = echoAddr
	resp, err := h2cClient().Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	pw.Write([]byte("hi"))
	buf := make([]byte, 7)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "echo:hi" {
		t.Fatalf("tunnel: %q %v", buf, err)
	}
	pw.Close()
}

func TestDrain(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before drain: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	// h2 client on its own connection.
	h2c := h2cClient()
	if r, err := h2c.Get("http://" + p.addr + "/"); err != nil || r.StatusCode != 200 {
		t.Fatalf("h2 before drain: %v", err)
	} else {
		r.Body.Close()
	}
	p.mgr.Drain()
	// The idle keep-alive connection is closed by the proxy.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after drain: %v", err)
	}
	// New connections are refused.
	if _, err := h2cClient().Get("http://" + p.addr + "/"); err == nil {
		t.Fatal("request served after drain")
	}
}

func TestHTTP1FullDuplex(t *testing.T) {
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(w, "echo:"+line)
			w.(http.Flusher).Flush()
		}
	}))
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/", pr)
	go pw.Write([]byte("one\n"))
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for _, msg := range []string{"one", "two", "three"} {
		if msg != "one" {
			go pw.Write([]byte(msg + "\n"))
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "echo:"+msg+"\n" {
			t.Fatalf("got %q %v", line, err)
		}
	}
	pw.Close()
}

func TestGRPCThroughDownstreamProtocolCluster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	// The listener did not sniff (Protocol unknown); the cluster follows
	// the downstream protocol, which the request itself tells.
	p := startProxy(t, proxyConfig{routes: rc(vhost(rt("grpc", "/", toCluster("g")))),
		clusters: []upstream{{name: "g", addrs: []string{ln.Addr().String()}, mutate: func(c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = map[string]*anypbAny{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t,
				&httpv3HttpProtocolOptions{UpstreamProtocolOptions: &httpv3UseDownstream{UseDownstreamProtocolConfig: &httpv3UseDownstreamConfig{
					HttpProtocolOptions: &corev3Http1Options{}, Http2ProtocolOptions: &corev3Http2Options{}}}})}
		}}}})
	cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
}
