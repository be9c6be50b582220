package cluster

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
)

func TestIdleTimeoutClosesPooledConn(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t)
	pc := staticCluster("c", b.addr())
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(time.Minute)}})
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Clock: clock})
	defer s.Close()
	served(t, s.Get("c"), 2)
	clock.Advance(30 * time.Second)
	served(t, s.Get("c"), 1)
	if b.conns.Load() != 1 {
		t.Fatalf("connection not reused within idle_timeout: %d", b.conns.Load())
	}
	clock.Advance(61 * time.Second)
	served(t, s.Get("c"), 1)
	if b.conns.Load() != 2 {
		t.Fatalf("idle connection reused after idle_timeout: %d connections", b.conns.Load())
	}
	meshtest.WaitFor(t, "idle connection closed", func() bool { return b.closed.Load() == 1 })
}

func TestHTTP2OverTLS(t *testing.T) {
	p := newPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert}}
	srv.StartTLS()
	defer srv.Close()
	pc := staticCluster("c", srv.Listener.Addr().String())
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{}}}})
	pc.TransportSocket = tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(p.caPEM)}}}})
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	defer s.Close()
	for range 3 {
		if code, body, _, err := get(t, s.Get("c"), nil); err != nil || code != 200 || body != "HTTP/2.0" {
			t.Fatalf("%d %q %v", code, body, err)
		}
	}
	if n := s.Get("c").Stats().UpstreamCxTotal.Load(); n != 1 {
		t.Fatalf("upstream_cx_total = %d", n)
	}
}

func TestRequestBodyForwarded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	defer srv.Close()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", srv.Listener.Addr().String())}, nil, Options{})
	defer s.Close()
	for range 3 {
		req, _ := http.NewRequest("POST", "http://svc/echo", io.NopCloser(stringsReader("hello body")))
		resp, _, err := s.Get("c").RoundTrip(req, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "hello body" {
			t.Fatalf("echo %q", got)
		}
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, proto := range []string{"h1", "h2"} {
		b.Run(proto, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			}))
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			defer srv.Close()
			pc := staticCluster("c", srv.Listener.Addr().String())
			if proto == "h2" {
				pc.TypedExtensionProtocolOptions = protocolOptions(b, &httpv3.HttpProtocolOptions{
					UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{}}}})
			}
			s := build(b, nil, []*clusterv3.Cluster{pc}, nil, Options{})
			defer s.Close()
			c := s.Get("c")
			req, _ := http.NewRequest("GET", "http://svc/", nil)
			req.Header.Set("User-Agent", "bench")
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				resp, _, err := c.RoundTrip(req, nil)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
			}
		})
	}
}

func TestHTTP2DrainOnClose(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	pc := staticCluster("c", srv.Listener.Addr().String())
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{}}}})
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{})
	c := s.Get("c")
	ch := async(t, c, nil)
	<-arrived
	s.Close()
	if c.Stats().UpstreamCxActive.Load() != 1 {
		t.Fatal("busy HTTP/2 connection closed before its stream finished")
	}
	close(release)
	if r := <-ch; r.err != nil || r.code != 200 {
		t.Fatalf("%+v", r)
	}
	meshtest.WaitFor(t, "drained connection to close", func() bool { return c.Stats().UpstreamCxActive.Load() == 0 })
}

func h2Cluster(t *testing.T, addr string, h2 *corev3.Http2ProtocolOptions, maxPerConn uint32) *clusterv3.Cluster {
	pc := staticCluster("c", addr)
	o := &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2}}}}
	if maxPerConn > 0 {
		o.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(maxPerConn)}
	}
	pc.TypedExtensionProtocolOptions = protocolOptions(t, o)
	return pc
}

func h2Server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestHTTP2StreamLimits(t *testing.T) {
	t.Run("max_concurrent_streams", func(t *testing.T) {
		arrived, release := make(chan struct{}, 10), make(chan struct{})
		srv, conns := h2Server(t, func(w http.ResponseWriter, r *http.Request) { arrived <- struct{}{}; <-release })
		s := build(t, nil, []*clusterv3.Cluster{h2Cluster(t, srv.Listener.Addr().String(),
			&corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(2)}, 0)}, nil, Options{})
		defer s.Close()
		var chs []chan result
		for range 4 {
			chs = append(chs, async(t, s.Get("c"), nil))
			<-arrived
		}
		close(release)
		for _, ch := range chs {
			if r := <-ch; r.err != nil {
				t.Fatal(r.err)
			}
		}
		if conns.Load() != 2 {
			t.Fatalf("%d connections for 4 streams at 2 per connection", conns.Load())
		}
	})
	t.Run("max_requests_per_connection", func(t *testing.T) {
		srv, conns := h2Server(t, func(w http.ResponseWriter, r *http.Request) {})
		s := build(t, nil, []*clusterv3.Cluster{h2Cluster(t, srv.Listener.Addr().String(), nil, 2)}, nil, Options{})
		defer s.Close()
		served(t, s.Get("c"), 4)
		if conns.Load() != 2 {
			t.Fatalf("%d connections for 4 requests at 2 per connection", conns.Load())
		}
		meshtest.WaitFor(t, "used-up connections to close", func() bool { return s.Get("c").Stats().UpstreamCxActive.Load() <= 1 })
	})
	t.Run("unsupported_option", func(t *testing.T) {
		_, err := Build(nil, []*clusterv3.Cluster{h2Cluster(t, "127.0.0.1:1",
			&corev3.Http2ProtocolOptions{InitialStreamWindowSize: wrapperspb.UInt32(65536)}, 0)}, nil, nil, Options{})
		if err == nil || !strings.Contains(err.Error(), "http2_protocol_options.initial_stream_window_size") {
			t.Fatalf("got %v", err)
		}
	})
}

// rawHTTPServer answers every request on a connection with a fixed
// keep-alive response, so benchmarks count only the client side.
func rawHTTPServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					// One request per read is enough for this benchmark.
					if strings.Contains(string(buf[:n]), "\r\n\r\n") {
						c.Write(resp)
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func BenchmarkRoundTripClientOnly(b *testing.B) {
	s := build(b, nil, []*clusterv3.Cluster{staticCluster("c", rawHTTPServer(b))}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	req.Header.Set("User-Agent", "bench")
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		resp, _, err := c.RoundTrip(req, nil)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
}

// The same request sent concurrently (as a mirror does) must not race on
// its header map, with or without a User-Agent.
func TestConcurrentSameRequest(t *testing.T) {
	b := newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("a", b.addr()), staticCluster("m", b.addr())}, nil, Options{})
	defer s.Close()
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	done := make(chan error, 2)
	for _, name := range []string{"a", "m"} {
		go func() {
			for range 20 {
				resp, _, err := s.Get(name).RoundTrip(req, nil)
				if err != nil {
					done <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := req.Header["User-Agent"]; ok {
		t.Fatal("caller's header map was modified")
	}
}

func TestPostReusesConnection(t *testing.T) {
	b := newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", b.addr())}, nil, Options{})
	defer s.Close()
	for range 10 {
		req, _ := http.NewRequest("POST", "http://svc/", io.NopCloser(stringsReader("payload")))
		resp, _, err := s.Get("c").RoundTrip(req, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if b.conns.Load() != 1 {
		t.Fatalf("%d connections for 10 sequential POSTs", b.conns.Load())
	}
}

// An upstream answering before the upload ends (413) is relayed, not
// turned into a reset.
func TestEarlyResponseDuringUpload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.Header().Set("Connection", "close")
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", srv.Listener.Addr().String())}, nil, Options{})
	defer s.Close()
	big := strings.NewReader(strings.Repeat("x", 32<<20))
	req, _ := http.NewRequest("POST", "http://svc/", io.NopCloser(big))
	resp, _, err := s.Get("c").RoundTrip(req, nil)
	if err != nil {
		t.Fatalf("early response lost: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if code, body, _, err := get(t, s.Get("c"), nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("next request: %d %q %v", code, body, err)
	}
}
