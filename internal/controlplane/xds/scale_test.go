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

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// leanProxy is a simulated proxy for scale runs: one ADS stream (state of
// the world or delta) with wildcard CDS, EDS, LDS and RDS subscriptions
// that ACKs every response without decoding its resources (decoded
// resources cost megabytes per proxy at 1,000 services, and decoding them
// would make 2,000 in-process proxies compete with the server for the
// machine's CPU). It records, per type, the last version it ACKed and when.
type leanProxy struct {
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	version map[string]string
	ackedAt map[string]time.Time
	changed chan struct{}
	err     error
}

var leanTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

func dialLean(addr string, m *node.Meta, delta bool) (*leanProxy, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.ForceCodec(headerCodec{})))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &leanProxy{conn: conn, cancel: cancel, done: make(chan struct{}),
		version: map[string]string{}, ackedAt: map[string]time.Time{}, changed: make(chan struct{})}
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	go func() {
		defer close(p.done)
		var err error
		if delta {
			err = p.runDelta(ctx, ads, m)
		} else {
			err = p.runSotW(ctx, ads, m)
		}
		p.mu.Lock()
		if ctx.Err() == nil {
			p.err = err
		}
		p.mu.Unlock()
	}()
	return p, nil
}

func (p *leanProxy) acked(t, version string) {
	p.mu.Lock()
	p.version[t] = version
	p.ackedAt[t] = time.Now()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *leanProxy) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient, m *node.Meta) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range leanTypes {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = m.Node()
		}
		if err := st.Send(req); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		p.acked(resp.GetTypeUrl(), resp.GetVersionInfo())
	}
}

func (p *leanProxy) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient, m *node.Meta) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range leanTypes {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = m.Node()
		}
		if err := st.Send(req); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		p.acked(resp.GetTypeUrl(), resp.GetSystemVersionInfo())
	}
}

// waitFor blocks until cond holds for the proxy's ACKed versions, the
// stream ends or ctx ends.
func (p *leanProxy) waitFor(ctx context.Context, cond func(version map[string]string) bool) error {
	for {
		p.mu.Lock()
		ok, ch, err := cond(p.version), p.changed, p.err
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-p.done:
			return fmt.Errorf("stream ended: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *leanProxy) close() {
	p.cancel()
	<-p.done
	p.conn.Close()
}

// scaleRun is a server with n lean proxies connected and synced.
type scaleRun struct {
	srv     *Server
	snap    *model.Snapshot
	proxies []*leanProxy
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
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	r := &scaleRun{srv: srv, snap: snap}
	r.stop = func() {
		for _, p := range r.proxies {
			p.close()
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
			p, err := dialLean(lis.Addr().String(), m, j%2 == 1)
			if err != nil {
				r.stop()
				tb.Fatal(err)
			}
			r.proxies = append(r.proxies, p)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.waitFor(ctx, func(v map[string]string) bool { return len(v) == len(leanTypes) }); err != nil {
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
		p.mu.Lock()
		before[i] = p.version[typeURL]
		p.mu.Unlock()
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
			if err := p.waitFor(ctx, func(v map[string]string) bool { return v[typeURL] != before[i] }); err != nil {
				tb.Errorf("proxy %d: %v", i, err)
				return
			}
			p.mu.Lock()
			lat[i] = p.ackedAt[typeURL].Sub(start)
			p.mu.Unlock()
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

func TestHeaderCodec(t *testing.T) {
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "7",
		Resources: []*anypb.Any{{TypeUrl: resource.ClusterType, Value: []byte{1, 2, 3}}}}
	data, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got discoveryv3.DiscoveryResponse
	if err := (headerCodec{}).Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.VersionInfo != "v1" || got.TypeUrl != resource.ClusterType || got.Nonce != "7" || len(got.Resources) != 0 {
		t.Errorf("decoded %v", &got)
	}
	if err := (headerCodec{}).Unmarshal([]byte{0xff}, &got); err == nil {
		t.Error("truncated input decoded without error")
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

// headerCodec decodes discovery responses without their resources: only
// the singular string fields (version, type URL, nonce). Everything else
// is plain protobuf.
type headerCodec struct{}

func (headerCodec) Name() string { return "proto" }

func (headerCodec) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }

func (headerCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("not a protobuf message: %T", v)
	}
	switch v.(type) {
	case *discoveryv3.DiscoveryResponse, *discoveryv3.DeltaDiscoveryResponse:
	default:
		return proto.Unmarshal(data, m)
	}
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if fd := fields.ByNumber(num); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() && typ == protowire.BytesType {
			str, n := protowire.ConsumeString(data)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.Set(fd, protoreflect.ValueOfString(str))
			data = data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
	}
	return nil
}
