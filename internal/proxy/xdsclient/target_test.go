package xdsclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

func TestSplitServers(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:15010", "istiod.istio-system.svc:15012", "10.0.0.1:15012, 10.0.0.2:15012"} {
		if _, err := xdsclient.SplitServers(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "a:1,", ":15010", "a:1,b"} {
		if _, err := xdsclient.SplitServers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestReplicas: given two control plane replicas, the client uses one;
// when that one stops, it reconnects to the other and keeps its config.
func TestReplicas(t *testing.T) {
	var srvs []*meshtest.XDSServer
	for range 2 {
		s, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		if err := s.Set(fixture("l1")); err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, s)
	}
	rec := &recorder{}
	c := xdsclient.New(xdsclient.Options{Server: srvs[0].Addr() + "," + srvs[1].Addr(),
		Node:    &corev3.Node{Id: "sidecar~127.0.0.1~a.default~default.svc.cluster.local"},
		Handler: rec, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitReady(t, c)

	used := 0
	if len(srvs[1].Requests()) > 0 {
		used = 1
	}
	other := srvs[1-used]
	before := len(other.Requests())
	srvs[used].Stop()
	meshtest.Eventually(t, "client moves to the other replica", 10*time.Second, func() error {
		if len(other.Requests()) == before || !c.Status().Connected {
			return errors.New("still on the stopped replica")
		}
		return nil
	})
	if r := rec.get(); r == nil || len(r.Listeners) != 1 {
		t.Fatalf("config lost on reconnect: %+v", r)
	}
}
