package xds

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// Scale runs connect lean simulated proxies: meshtest.XDSClient with
// Lean set (one ADS stream, state of the world or delta, ACKing every
// response without decoding it).

// scaleRun is a server with n lean proxies connected and synced.
type scaleRun struct {
	srv     *Server
	snap    *model.Snapshot
	proxies []*meshtest.XDSClient
	stop    func()
}

// startScale serves snap to n capture sidecars (every other one on delta
// xDS) spread over namespaces ns-0 … (one namespace: "default"),
// connected in batches so the first pushes do not pile up.
func startScale(tb testing.TB, snap *model.Snapshot, n, namespaces int) *scaleRun {
	tb.Helper()
	srv := New(snap, Options{Debounce: time.Millisecond})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := grpc.NewServer(GRPCOptions()...)
	srv.Register(g)
	go g.Serve(lis)
	r := &scaleRun{srv: srv, snap: snap}
	r.stop = func() {
		for _, p := range r.proxies {
			p.Close()
		}
		g.Stop()
		srv.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const batch = 100
	for i := 0; i < n; i += batch {
		var wg sync.WaitGroup
		for j := i; j < min(i+batch, n); j++ {
			ns := "default"
			if namespaces > 1 {
				ns = fmt.Sprintf("ns-%d", j%namespaces)
			}
			m := &node.Meta{Type: node.Sidecar, IP: fmt.Sprintf("127.0.%d.%d", 10+j/250, j%250+1), Name: fmt.Sprintf("app-%d", j),
				Namespace: ns, Labels: map[string]string{"app": fmt.Sprintf("svc-%d", j%max(len(snap.Services), 1))},
				Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}, Capture: true}
			p, err := meshtest.DialXDS(lis.Addr().String(), m, meshtest.XDSClientOptions{Lean: true, Delta: j%2 == 1})
			if err != nil {
				r.stop()
				tb.Fatal(err)
			}
			r.proxies = append(r.proxies, p)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.WaitFor(ctx, (*meshtest.XDSClient).Synced); err != nil {
					tb.Error(err)
				}
			}()
		}
		wg.Wait()
		if tb.Failed() {
			r.stop()
			tb.FailNow()
		}
	}
	return r
}

// change publishes snap and returns, per proxy, how long after the
// Update it ACKed a new version of typeURL.
func (r *scaleRun) change(tb testing.TB, snap *model.Snapshot, typeURL string) []time.Duration {
	tb.Helper()
	before := make([]string, len(r.proxies))
	for i, p := range r.proxies {
		before[i] = p.Version(typeURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	r.srv.Update(snap)
	r.srv.Flush()
	lat := make([]time.Duration, len(r.proxies))
	var wg sync.WaitGroup
	for i, p := range r.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.WaitFor(ctx, func(c *meshtest.XDSClient) bool { return c.Version(typeURL) != before[i] }); err != nil {
				tb.Errorf("proxy %d: %v", i, err)
				return
			}
			lat[i] = p.AckedAt(typeURL).Sub(start)
		}()
	}
	wg.Wait()
	r.snap = snap
	return lat
}

// withEndpoint returns snap with service i's endpoint moved.
func withEndpoint(snap *model.Snapshot, i int, addr string) *model.Snapshot {
	next := *snap
	next.Services = slices.Clone(snap.Services)
	svc := *next.Services[i]
	ep := *svc.Endpoints[0]
	ep.Address = addr
	svc.Endpoints = []*model.Endpoint{&ep}
	next.Services[i] = &svc
	return &next
}

// withTimeout returns snap with a VirtualService setting a timeout on
// service i.
func withTimeout(snap *model.Snapshot, i int, d time.Duration) *model.Snapshot {
	next := *snap
	name := fmt.Sprintf("svc-%d", i)
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	vs.Spec.Hosts = []string{name}
	vs.Spec.Http = []*networking.HTTPRoute{{Timeout: durationpb.New(d), Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: name}}}}}
	next.VirtualServices = nil
	for _, v := range snap.VirtualServices {
		if v.Name != name {
			next.VirtualServices = append(next.VirtualServices, v)
		}
	}
	next.VirtualServices = append(next.VirtualServices, vs)
	return &next
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestPushConvergence: after an endpoint change and a route change every
// lean proxy (state of the world and delta) ACKs a new EDS, then RDS,
// version. The latencies are logged, not asserted; BenchmarkPushConvergence
// runs the large sizes.
func TestPushConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	r := startScale(t, benchSnapshot(200), 100, 3)
	defer r.stop()
	for _, c := range []struct {
		name string
		snap *model.Snapshot
		typ  string
	}{
		{"endpoint", withEndpoint(r.snap, 0, "198.18.200.1"), resource.EndpointType},
		{"route", withTimeout(r.snap, 1, time.Second), resource.RouteType},
	} {
		lat := r.change(t, c.snap, c.typ)
		t.Logf("%s change, 200 services x 100 proxies: p50 %v, p99 %v", c.name, percentile(lat, 0.5), percentile(lat, 0.99))
	}
}

// BenchmarkPushConvergence measures change → all ACKs with in-process
// proxies (half state of the world, half delta): an endpoint change (EDS)
// and a route change (RDS). The debounce is not included (Update is
// flushed at once). Proxies share one namespace, or (/ns20) spread over 20:
// each namespace's outbound side is translated once per snapshot. Run one
// size: -bench 'PushConvergence/1000x2000$' -benchtime 1x.
func BenchmarkPushConvergence(b *testing.B) {
	for _, size := range []struct{ services, proxies, namespaces int }{{100, 100, 1}, {1000, 200, 1}, {1000, 2000, 1}, {1000, 2000, 20}} {
		name := fmt.Sprintf("%dx%d", size.services, size.proxies)
		if size.namespaces > 1 {
			name += fmt.Sprintf("/ns%d", size.namespaces)
		}
		b.Run(name, func(b *testing.B) {
			snap := benchSnapshot(size.services)
			began := time.Now()
			r := startScale(b, snap, size.proxies, size.namespaces)
			defer r.stop()
			b.Logf("%d proxies connected and synced in %v", size.proxies, time.Since(began))
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.Logf("heap in use (server and lean clients): %d MiB", ms.HeapInuse>>20)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				for _, c := range []struct {
					name string
					snap *model.Snapshot
					typ  string
				}{
					{"endpoint", withEndpoint(r.snap, 0, fmt.Sprintf("198.18.200.%d", i%250+1)), resource.EndpointType},
					{"route", withTimeout(r.snap, 1, time.Duration(i+1)*time.Second), resource.RouteType},
				} {
					lat := r.change(b, c.snap, c.typ)
					p50, p99, all := percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1)
					b.ReportMetric(p99.Seconds(), c.name+"-p99-s")
					b.Logf("%s change: p50 %v, p99 %v, all %d proxies %v", c.name, p50.Round(time.Millisecond), p99.Round(time.Millisecond), len(lat), all.Round(time.Millisecond))
				}
			}
		})
	}
}
