package admin

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

type source struct {
	res *xdsclient.Resources
	set *cluster.Set
}

func (s source) Resources() *xdsclient.Resources            { return s.res }
func (s source) Clusters() *cluster.Set                     { return s.set }
func (s source) TCPStats(func(prefix string, s *tcp.Stats)) {}
func (s source) Warming() map[string][]string {
	return map[string][]string{"l": {"route 80"}}
}
func (s source) ActiveListener(string) *listenerv3.Listener {
	return meshtest.Listener("l", "127.0.0.1:79", meshtest.TCPProxyFilter("old"))
}

func newSource(t *testing.T) source {
	res := xdsclient.NewResources()
	res.Listeners["l"] = meshtest.Listener("l", "127.0.0.1:80", meshtest.TCPProxyFilter("c"))
	c := meshtest.StaticCluster("c", "127.0.0.1:9")
	res.Clusters["c"] = c
	res.Secrets["default"] = &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "CERT"}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "TOP-SECRET-KEY"}},
	}}}
	res.Versions[xdsclient.ListenerType] = "7"
	set, err := cluster.Build(nil, []*clusterv3.Cluster{c}, nil, nil, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	return source{res: res, set: set}
}

func do(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestEndpoints(t *testing.T) {
	ready := false
	drained, quit := false, false
	var drainFlags [2]bool
	level := new(slog.LevelVar)
	a := New(newSource(t), Options{Level: level, Ready: func() bool { return ready },
		Listeners: func() []listener.ListenerStats {
			return []listener.ListenerStats{{Name: "virtualOutbound", Addr: "0.0.0.0:15001", DownstreamCxTotal: 3}}
		},
		Drain: func(in, graceful bool) { drained = true; drainFlags = [2]bool{in, graceful} }, Quit: func() { quit = true }})
	h := a.Handler()
	if code, body := do(t, a.HealthHandler(), "GET", "/healthz/ready"); code != 503 || !strings.Contains(body, "PRE_INITIALIZING") {
		t.Fatalf("before config: %d %s", code, body)
	}
	ready = true
	if code, _ := do(t, a.HealthHandler(), "GET", "/healthz/ready"); code != 200 {
		t.Fatalf("ready: %d", code)
	}
	code, body := do(t, h, "GET", "/config_dump")
	// protojson varies its whitespace on purpose.
	compact := strings.Join(strings.Fields(body), "")
	if code != 200 || !strings.Contains(body, "ListenersConfigDump") || !strings.Contains(compact, `"versionInfo":"7"`) {
		t.Fatalf("config_dump %d:\n%s", code, body)
	}
	if !strings.Contains(compact, `"warmingState":{"versionInfo":"7"`) || !strings.Contains(compact, `"portValue":79`) {
		t.Fatalf("config_dump does not show the warming and the active listener:\n%s", body)
	}
	if strings.Contains(body, "TOP-SECRET-KEY") || !strings.Contains(body, "CERT") {
		t.Fatal("config_dump leaks the private key or drops the certificate")
	}
	if code, body := do(t, h, "GET", "/clusters"); code != 200 || !strings.Contains(body, "127.0.0.1:9") {
		t.Fatalf("/clusters %d:\n%s", code, body)
	}
	if _, body := do(t, h, "GET", "/stats?filter=upstream_rq_total"); !strings.Contains(body, "cluster.c.upstream_rq_total: 0") {
		t.Fatalf("/stats:\n%s", body)
	}
	if _, body := do(t, h, "GET", "/listeners"); body != "virtualOutbound::0.0.0.0:15001\n" {
		t.Fatalf("/listeners %q", body)
	}
	if _, body := do(t, h, "GET", "/stats"); !strings.Contains(body, "listener.0.0.0.0:15001.downstream_cx_total: 3") {
		t.Fatalf("/stats lacks listener stats:\n%s", body)
	}
	if code, _ := do(t, h, "POST", "/logging?level=debug"); code != 200 || level.Level() != slog.LevelDebug {
		t.Fatalf("logging: %d %v", code, level.Level())
	}
	if code, _ := do(t, h, "POST", "/logging?level=loud"); code != 400 {
		t.Fatalf("bad level accepted: %d", code)
	}
	if code, _ := do(t, h, "GET", "/drain_listeners"); code != http.StatusMethodNotAllowed || drained {
		t.Fatal("GET must not drain")
	}
	if code, _ := do(t, h, "POST", "/drain_listeners"); code != 200 || !drained || drainFlags != [2]bool{} {
		t.Fatalf("drain_listeners did not drain (or not plainly: %v)", drainFlags)
	}
	// Istio's native-sidecar preStop: inbound only, graceful.
	if code, _ := do(t, h, "POST", "/drain_listeners?inboundonly&graceful&skip_exit"); code != 200 || drainFlags != [2]bool{true, true} {
		t.Fatalf("drain_listeners?inboundonly&graceful: %d, flags %v", code, drainFlags)
	}
	if code, body := do(t, a.HealthHandler(), "GET", "/healthz/ready"); code != 503 || !strings.Contains(body, "DRAINING") {
		t.Fatalf("draining proxy still ready: %d %s", code, body)
	}
	if code, _ := do(t, h, "POST", "/quitquitquit"); code != 200 || !quit {
		t.Fatal("quitquitquit")
	}
}

// Istio's default retry policy names the previous_hosts predicate as an
// Any: /config_dump must be able to print it.
func TestConfigDumpPrintsRetryHostPredicate(t *testing.T) {
	// Built from the type URL: only the admin package's own import can make
	// the type resolvable.
	pred := &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
	rc := &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
		Name: "reviews", Domains: []string{"*"},
		RetryPolicy: &routev3.RetryPolicy{RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name: "envoy.retry_host_predicates.previous_hosts", ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: pred},
		}}},
	}}}
	a, err := anypb.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	// Marshal through the global registry, as the handler does: the
	// predicate's type must resolve without the test importing it.
	b, err := protojson.Marshal(a)
	if err != nil {
		t.Fatalf("config dump of a route with previous_hosts: %v", err)
	}
	if !bytes.Contains(b, []byte("PreviousHostsPredicate")) {
		t.Fatalf("dump lacks the predicate: %s", b)
	}
}
