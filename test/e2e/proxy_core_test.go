package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// startProxy runs the whole proxy (bootstrap.Start) against srv with every
// port ephemeral.
func proxyStart(t *testing.T, srv *meshtest.XDSServer) *bootstrap.Proxy {
	t.Helper()
	cfg := &bootstrap.Config{XDS: srv.Addr(), Meta: node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "e2e", Namespace: "default"},
		DrainDuration: time.Second, PeekTimeout: time.Second}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	if os.Getenv("WEFT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := bootstrap.Start(ctx, cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Wait() })
	return p
}

func proxyGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProxyReadinessAndAdmin: not ready until listeners, clusters and the
// endpoints they reference are applied; then admin shows the config.
func TestProxyReadinessAndAdmin(t *testing.T) {
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	be := meshtest.TCPEcho(t, "hello\n")
	partial := meshtest.Resources{
		Listeners: []types.Resource{meshtest.Listener("tcp-in", "127.0.0.1:0", meshtest.TCPProxyFilter("outbound|9000||echo"))},
		Clusters:  []types.Resource{meshtest.EDSCluster("outbound|9000||echo")},
	}
	if err := srv.Set(partial); err != nil {
		t.Fatal(err)
	}
	p := proxyStart(t, srv)
	health := "http://" + p.Addr("health") + "/healthz/ready"
	admin := "http://" + p.Addr("admin")
	// Wait until the proxy has the listener (LDS applied) but no endpoints.
	meshtest.WaitFor(t, "listener bound", func() bool { _, ok := p.Runtime.Listeners().Addr("tcp-in"); return ok })
	if code, body := proxyGet(t, health); code != http.StatusServiceUnavailable {
		t.Fatalf("ready before endpoints arrived: %d %s", code, body)
	}
	full := partial
	full.Endpoints = []types.Resource{meshtest.Endpoints("outbound|9000||echo", be)}
	if err := srv.Set(full); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "ready", func() bool { code, _ := proxyGet(t, health); return code == http.StatusOK })

	addr, _ := p.Runtime.Listeners().Addr("tcp-in")
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello\n" {
		t.Fatalf("through the proxy: %q %v", buf, err)
	}
	c.Close()

	code, body := proxyGet(t, admin+"/config_dump")
	if code != 200 {
		t.Fatalf("config_dump %d", code)
	}
	var dump struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, c := range dump.Configs {
		types[c["@type"].(string)] = true
	}
	for _, want := range []string{"ListenersConfigDump", "ClustersConfigDump", "EndpointsConfigDump", "RoutesConfigDump", "SecretsConfigDump"} {
		if !types["type.googleapis.com/envoy.admin.v3."+want] {
			t.Errorf("config_dump lacks %s: %v", want, types)
		}
	}
	if !strings.Contains(body, `"tcp-in"`) || !strings.Contains(body, "outbound|9000||echo") {
		t.Errorf("config_dump lacks the resources:\n%s", body)
	}
	if _, body := proxyGet(t, admin+"/clusters"); !strings.Contains(body, "outbound|9000||echo") || !strings.Contains(body, be) {
		t.Errorf("/clusters:\n%s", body)
	}
	meshtest.WaitFor(t, "tcp stats", func() bool {
		_, body := proxyGet(t, admin+"/stats")
		return strings.Contains(body, "tcp.outbound|9000||echo.downstream_cx_total: 1") &&
			strings.Contains(body, "cluster.outbound|9000||echo.upstream_cx_total: 1")
	})
	if _, body := proxyGet(t, "http://"+p.Addr("stats")+"/stats/prometheus"); !strings.Contains(body, `envoy_cluster_upstream_cx_total{envoy_cluster_name="outbound|9000||echo"} 1`) {
		t.Errorf("prometheus:\n%s", body)
	}
	// Runtime log level.
	resp, err := http.Post(admin+"/logging?level=debug", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "debug") {
		t.Errorf("/logging: %s", b)
	}
	// /quitquitquit drains and stops the proxy.
	resp, err = http.Post(admin+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not stop after /quitquitquit")
	}
	if _, err := net.Dial("tcp", addr.String()); err == nil {
		t.Fatal("listener still accepting after shutdown")
	}
}
