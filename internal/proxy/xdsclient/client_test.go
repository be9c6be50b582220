package xdsclient_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// recorder accepts every update unless reject says otherwise.
type recorder struct {
	mu     sync.Mutex
	last   *xdsclient.Resources
	reject func(*xdsclient.Resources) error
}

func (r *recorder) Apply(_ string, res *xdsclient.Resources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reject != nil {
		if err := r.reject(res); err != nil {
			return err
		}
	}
	r.last = res
	return nil
}

func (r *recorder) get() *xdsclient.Resources {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func fixture(listeners ...string) meshtest.Resources {
	r := meshtest.Resources{
		Routes:    []types.Resource{meshtest.RouteConfig("80", "backend")},
		Clusters:  []types.Resource{meshtest.EDSCluster("backend")},
		Endpoints: []types.Resource{meshtest.Endpoints("backend", "127.0.0.1:9")},
	}
	for _, l := range listeners {
		r.Listeners = append(r.Listeners, meshtest.Listener(l, "127.0.0.1:0", meshtest.HCMFilter("80")))
	}
	return r
}

func start(t *testing.T, srv *meshtest.XDSServer, h xdsclient.Handler, sotw bool) *xdsclient.Client {
	t.Helper()
	c := xdsclient.New(xdsclient.Options{Server: srv.Addr(), Node: &corev3.Node{Id: "sidecar~127.0.0.1~a.default~default.svc.cluster.local"},
		Handler: h, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, SotW: sotw})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// serve starts a fake control plane serving res; it stops when the test
// ends.
func serve(t *testing.T, opts meshtest.XDSServerOptions, res meshtest.Resources) *meshtest.XDSServer {
	t.Helper()
	srv, err := meshtest.NewXDSServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	return srv
}

// setAndWaitNACK serves res and returns the first NACK that follows.
func setAndWaitNACK(t *testing.T, srv *meshtest.XDSServer, res meshtest.Resources) meshtest.XDSRequest {
	t.Helper()
	n := len(srv.Requests())
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nack, _, err := srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool { return r.NACK() })
	if err != nil {
		t.Fatal(err)
	}
	return nack
}

func waitReady(t *testing.T, c *xdsclient.Client) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("client not ready: %+v", c.Status())
	}
}

func TestSubscribeAndReady(t *testing.T) {
	for _, tc := range []struct {
		name            string
		noDelta, sotw   bool
		wantDeltaStatus bool
	}{
		{name: "delta", wantDeltaStatus: true},
		{name: "fallback to sotw", noDelta: true},
		{name: "sotw", sotw: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Listeners and clusters only: routes and endpoints are
			// referenced but missing, so the client must not be ready.
			partial := fixture("l1")
			partial.Routes, partial.Endpoints = nil, nil
			srv := serve(t, meshtest.XDSServerOptions{NoDelta: tc.noDelta}, partial)
			rec := &recorder{}
			c := start(t, srv, rec, tc.sotw)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, _, err := srv.WaitRequest(ctx, 0, func(r meshtest.XDSRequest) bool {
				return r.TypeURL == xdsclient.RouteType && len(r.Names) == 1 && r.Names[0] == "80"
			}); err != nil {
				t.Fatal("no RDS subscription for the listener's route:", err)
			}
			if _, _, err := srv.WaitRequest(ctx, 0, func(r meshtest.XDSRequest) bool {
				return r.TypeURL == xdsclient.EndpointType && len(r.Names) == 1 && r.Names[0] == "backend"
			}); err != nil {
				t.Fatal("no EDS subscription for the cluster:", err)
			}
			select {
			case <-c.Ready():
				t.Fatal("ready before routes and endpoints arrived")
			default:
			}
			if err := srv.Set(fixture("l1")); err != nil {
				t.Fatal(err)
			}
			waitReady(t, c)
			res := rec.get()
			if res.Listeners["l1"] == nil || res.Routes["80"] == nil || res.Clusters["backend"] == nil || res.Endpoints["backend"] == nil {
				t.Fatalf("incomplete resources: %v", res.Missing())
			}
			if st := c.Status(); st.Delta != tc.wantDeltaStatus {
				t.Fatalf("delta=%v, want %v", st.Delta, tc.wantDeltaStatus)
			}
			// Removing a listener is seen (delta removed_resources or SotW full set).
			if err := srv.Set(fixture("l2")); err != nil {
				t.Fatal(err)
			}
			meshtest.WaitFor(t, "listener replaced", func() bool {
				r := rec.get()
				return r.Listeners["l2"] != nil && r.Listeners["l1"] == nil
			})
			// A listener that references a new route name: the RDS
			// subscription grows and the route arrives.
			more := fixture("l2")
			more.Listeners = append(more.Listeners, meshtest.Listener("l3", "127.0.0.1:0", meshtest.HCMFilter("81")))
			more.Routes = append(more.Routes, meshtest.RouteConfig("81", "backend"))
			if err := srv.Set(more); err != nil {
				t.Fatal(err)
			}
			meshtest.WaitFor(t, "second route", func() bool { return rec.get().Routes["81"] != nil && rec.get().Routes["80"] != nil })
			// Dropping the listener drops the route only it used.
			if err := srv.Set(fixture("l2")); err != nil {
				t.Fatal(err)
			}
			meshtest.WaitFor(t, "unreferenced route dropped", func() bool { return rec.get().Routes["81"] == nil && rec.get().Routes["80"] != nil })
		})
	}
}

func TestNACKKeepsOldConfig(t *testing.T) {
	for _, sotw := range []bool{false, true} {
		t.Run(map[bool]string{false: "delta", true: "sotw"}[sotw], func(t *testing.T) {
			srv := serve(t, meshtest.XDSServerOptions{}, fixture("good"))
			rec := &recorder{reject: func(r *xdsclient.Resources) error {
				if r.Listeners["bad"] != nil {
					return errors.New(`listener "bad": field per_connection_buffer_limit_bytes is not supported`)
				}
				return nil
			}}
			c := start(t, srv, rec, sotw)
			waitReady(t, c)
			nack := setAndWaitNACK(t, srv, fixture("good", "bad"))
			if nack.TypeURL != xdsclient.ListenerType || !strings.Contains(nack.ErrorDetail, "per_connection_buffer_limit_bytes") {
				t.Fatalf("NACK %+v does not name the field", nack)
			}
			if r := rec.get(); r.Listeners["good"] == nil || r.Listeners["bad"] != nil {
				t.Fatal("old config not kept")
			}
			if st := c.Status(); !strings.Contains(st.Types[xdsclient.ListenerType].LastNACK, "per_connection_buffer_limit_bytes") {
				t.Fatalf("status does not show the NACK: %+v", st.Types[xdsclient.ListenerType])
			}
		})
	}
}

func TestReconnect(t *testing.T) {
	srv := serve(t, meshtest.XDSServerOptions{}, fixture("l1"))
	rec := &recorder{}
	c := start(t, srv, rec, false)
	waitReady(t, c)
	srv.Stop()
	meshtest.WaitFor(t, "disconnect seen", func() bool { return !c.Status().Connected })
	if rec.get().Listeners["l1"] == nil {
		t.Fatal("config dropped while control plane is away")
	}
	n := len(srv.Requests())
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Set(fixture("l1", "l3")); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "update after reconnect", func() bool { return rec.get().Listeners["l3"] != nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The restarted server sees the RDS and EDS subscriptions again.
	for _, typ := range []string{xdsclient.RouteType, xdsclient.EndpointType} {
		if _, _, err := srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool { return r.TypeURL == typ && len(r.Names) > 0 }); err != nil {
			t.Fatalf("no resubscription for %s: %v", typ, err)
		}
	}
	if c.Status().Connects < 2 {
		t.Fatal("no reconnect counted")
	}
	// A listener removed while the proxy was away is removed after the
	// reconnect (delta: initial_resource_versions let the server report it).
	srv.Stop()
	meshtest.WaitFor(t, "disconnect seen", func() bool { return !c.Status().Connected })
	if err := srv.Set(fixture("l3")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "listener removed during the outage", func() bool {
		r := rec.get()
		return r.Listeners["l1"] == nil && r.Listeners["l3"] != nil
	})
}

func TestPanicInHandlerIsNACK(t *testing.T) {
	srv := serve(t, meshtest.XDSServerOptions{}, fixture("good"))
	rec := &recorder{reject: func(r *xdsclient.Resources) error {
		if r.Listeners["boom"] != nil {
			panic("compiler bug")
		}
		return nil
	}}
	c := start(t, srv, rec, false)
	waitReady(t, c)
	nack := setAndWaitNACK(t, srv, fixture("good", "boom"))
	if !strings.Contains(nack.ErrorDetail, "compiler bug") {
		t.Fatalf("NACK %q", nack.ErrorDetail)
	}
	if !c.Status().Connected {
		t.Fatal("client died")
	}
}

// After an outage the client reconnects within its own backoff, whatever
// gRPC's connection backoff has grown to (issue 18 item 3: gRPC's backoff,
// up to 120 s, stacked on the client's 15 s). gRPC's backoff is set to 20 s
// here, as after a long outage; the client's is at most 100 ms.
func TestReconnectDelayIsTheClientsOwn(t *testing.T) {
	srv := serve(t, meshtest.XDSServerOptions{}, fixture("l1"))
	var dials atomic.Int64
	d := &net.Dialer{}
	c := xdsclient.New(xdsclient.Options{Server: srv.Addr(), Node: &corev3.Node{Id: "sidecar~127.0.0.1~a.default~default.svc.cluster.local"},
		Handler: &recorder{}, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		DialOptions: []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 20 * time.Second, Multiplier: 1, MaxDelay: 20 * time.Second}}),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, "tcp", addr)
			}),
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitReady(t, c)
	srv.Stop()
	meshtest.WaitFor(t, "disconnect seen", func() bool { return !c.Status().Connected })
	// Connection attempts go on during the outage, at the client's pace.
	n := dials.Load()
	meshtest.WaitFor(t, "reconnect attempts during the outage", func() bool { return dials.Load() >= n+3 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	deadline := back.Add(5 * time.Second)
	defer func() { t.Logf("resynced %v after the server's return", time.Since(back)) }()
	for c.Status().Connects < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect within 5 s of the server's return (gRPC's own backoff is 20 s): %d dials", dials.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
