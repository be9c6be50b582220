package runtime_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/runtime"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// backend answers every connection with its name, then echoes.
func backend(t *testing.T, name string) string { return meshtest.TCPEcho(t, name+"\n") }

type proxy struct {
	rt  *runtime.Runtime
	xc  *xdsclient.Client
	srv *meshtest.XDSServer
}

func startProxy(t *testing.T, res meshtest.Resources) *proxy {
	t.Helper()
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	rt := runtime.New(runtime.Options{})
	xc := xdsclient.New(xdsclient.Options{Server: srv.Addr(), Node: &corev3.Node{Id: "sidecar~127.0.0.1~t.default~default.svc.cluster.local"},
		Handler: rt, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { xc.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ctx, c2 := context.WithTimeout(context.Background(), time.Second)
		rt.Close(ctx)
		c2()
	})
	select {
	case <-xc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("not ready: %+v", xc.Status())
	}
	return &proxy{rt: rt, xc: xc, srv: srv}
}

func (p *proxy) addr(t *testing.T, listener string) string {
	t.Helper()
	a, ok := p.rt.Listeners().Addr(listener)
	if !ok {
		t.Fatalf("listener %s not bound (have %v)", listener, p.rt.Listeners().Names())
	}
	return a.String()
}

// hello connects and returns the backend's name line, keeping the conn.
func hello(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		c.Close()
		t.Fatalf("no greeting through %s: %v", addr, err)
	}
	return c, strings.TrimSpace(string(buf[:n]))
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	io.WriteString(c, msg)
	buf := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q %v", buf, err)
	}
}

func tcpConfig(cluster string, hosts map[string][]string, extra ...types.Resource) meshtest.Resources {
	r := meshtest.Resources{Listeners: []types.Resource{meshtest.Listener("tcp", "127.0.0.1:0", meshtest.TCPProxyFilter(cluster))}}
	for name, hs := range hosts {
		r.Clusters = append(r.Clusters, meshtest.EDSCluster(name))
		r.Endpoints = append(r.Endpoints, meshtest.Endpoints(name, hs...))
	}
	r.Listeners = append(r.Listeners, extra...)
	return r
}

func TestUpdateKeepsEstablishedConnections(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	hosts := map[string][]string{"a": {a}, "b": {b}}
	p := startProxy(t, tcpConfig("a", hosts))
	addr := p.addr(t, "tcp")
	old, got := hello(t, addr)
	defer old.Close()
	if got != "a" {
		t.Fatalf("got %q", got)
	}
	// Switch the listener to cluster b: same address, so the socket stays.
	if err := p.srv.Set(tcpConfig("b", hosts)); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "new config", func() bool {
		c, got := hello(t, addr)
		c.Close()
		return got == "b"
	})
	if p.addr(t, "tcp") != addr {
		t.Fatal("listener rebound on update")
	}
	echo(t, old, "old connection survives")
	// Add a second listener, then remove it while a connection is open.
	second := meshtest.Listener("second", "127.0.0.1:0", meshtest.TCPProxyFilter("a"))
	if err := p.srv.Set(tcpConfig("b", hosts, second)); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "second listener", func() bool { _, ok := p.rt.Listeners().Addr("second"); return ok })
	c2, _ := hello(t, p.addr(t, "second"))
	defer c2.Close()
	if err := p.srv.Set(tcpConfig("b", hosts)); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "second listener removed", func() bool { _, ok := p.rt.Listeners().Addr("second"); return !ok })
	echo(t, c2, "draining connection still served")
	echo(t, old, "first listener untouched")
}

func TestNACKKeepsServing(t *testing.T) {
	a := backend(t, "a")
	hosts := map[string][]string{"a": {a}}
	p := startProxy(t, tcpConfig("a", hosts))
	addr := p.addr(t, "tcp")
	n := len(p.srv.Requests())
	bad := meshtest.Listener("bad", "127.0.0.1:0", meshtest.TCPProxyFilter("a"))
	bad.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1024)
	if err := p.srv.Set(tcpConfig("a", hosts, bad)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nack, _, err := p.srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool { return r.NACK() })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nack.ErrorDetail, `listener "bad"`) || !strings.Contains(nack.ErrorDetail, "per_connection_buffer_limit_bytes") {
		t.Fatalf("NACK detail %q does not name the listener and field", nack.ErrorDetail)
	}
	c, got := hello(t, addr)
	c.Close()
	if got != "a" {
		t.Fatalf("old config not serving: %q", got)
	}
	if _, ok := p.rt.Listeners().Addr("bad"); ok {
		t.Fatal("rejected listener was bound")
	}
	// A tcp_proxy field weft-proxy does not implement is NACKed too, naming the field.
	n = len(p.srv.Requests())
	bad2 := meshtest.Listener("bad2", "127.0.0.1:0", &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: meshtest.Any(&corev3.Node{})}})
	if err := p.srv.Set(tcpConfig("a", hosts, bad2)); err != nil {
		t.Fatal(err)
	}
	nack, _, err = p.srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool { return r.NACK() })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nack.ErrorDetail, "envoy.config.core.v3.Node") {
		t.Fatalf("NACK detail %q does not name the type", nack.ErrorDetail)
	}
}

func TestControlPlaneRestart(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	hosts := map[string][]string{"a": {a}, "b": {b}}
	p := startProxy(t, tcpConfig("a", hosts))
	addr := p.addr(t, "tcp")
	p.srv.Stop()
	meshtest.WaitFor(t, "disconnect", func() bool { return !p.xc.Status().Connected })
	// The proxy keeps serving while the control plane is away.
	c, got := hello(t, addr)
	c.Close()
	if got != "a" {
		t.Fatalf("got %q", got)
	}
	n := len(p.srv.Requests())
	if err := p.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Set(tcpConfig("b", hosts)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An ACK (a request with the response's nonce and no error) after the restart.
	if _, _, err := p.srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool {
		return r.TypeURL == xdsclient.ListenerType && r.Nonce != "" && !r.NACK()
	}); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "config from the restarted control plane", func() bool {
		c, got := hello(t, addr)
		c.Close()
		return got == "b"
	})
}
