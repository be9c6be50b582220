package cluster

import (
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/rflag"
)

func outlierCluster(name string, consecutive, maxPercent uint32, addrs ...string) *clusterv3.Cluster {
	pc := staticCluster(name, addrs...)
	pc.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:    wrapperspb.UInt32(consecutive),
		Interval:           durationpb.New(10 * time.Second),
		BaseEjectionTime:   durationpb.New(30 * time.Second),
		MaxEjectionPercent: wrapperspb.UInt32(maxPercent),
	}
	return pc
}

// served sends n requests and counts which backend answered.
func served(t *testing.T, c *Cluster, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		_, _, att, err := get(t, c, nil)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		out[att.Host]++
	}
	return out
}

func TestOutlierEjectAndReturn(t *testing.T) {
	clock := newFakeClock()
	good1, good2, bad := newBackend(t), newBackend(t), newBackend(t)
	bad.status.Store(500)
	s := build(t, nil, []*clusterv3.Cluster{outlierCluster("c", 3, 100, good1.addr(), good2.addr(), bad.addr())},
		nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	st := c.Stats()

	served(t, c, 9) // round robin: the bad host answers 3 times in a row from its view
	if st.OutlierEjectionsEnforcedTotal.Load() != 1 || st.OutlierEjectionsActive.Load() != 1 {
		t.Fatalf("enforced=%d active=%d", st.OutlierEjectionsEnforcedTotal.Load(), st.OutlierEjectionsActive.Load())
	}
	if got := served(t, c, 20); got[bad.addr()] != 0 {
		t.Fatalf("ejected host still served %d requests", got[bad.addr()])
	}
	clock.Advance(29 * time.Second)
	if got := served(t, c, 10); got[bad.addr()] != 0 {
		t.Fatal("host returned before base_ejection_time")
	}
	clock.Advance(2 * time.Second)
	if got := served(t, c, 3); got[bad.addr()] != 1 {
		t.Fatalf("host did not return after base_ejection_time: %v", got)
	}
	if st.OutlierEjectionsActive.Load() != 0 {
		t.Fatal("ejections_active not back to 0")
	}
	// Second ejection lasts 2 × base_ejection_time.
	bad.hits.Store(0)
	served(t, c, 9)
	if st.OutlierEjectionsEnforcedTotal.Load() != 2 {
		t.Fatalf("second ejection missing: %d", st.OutlierEjectionsEnforcedTotal.Load())
	}
	clock.Advance(40 * time.Second)
	if got := served(t, c, 10); got[bad.addr()] != 0 {
		t.Fatal("second ejection shorter than 2 × base")
	}
	clock.Advance(30 * time.Second)
	if got := served(t, c, 9); got[bad.addr()] == 0 {
		t.Fatal("host did not return after the second ejection")
	}
}

func TestOutlierSuccessResetsConsecutive(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{outlierCluster("c", 3, 100, b.addr())}, nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	for range 5 {
		b.status.Store(503)
		served(t, c, 2)
		b.status.Store(0)
		served(t, c, 1)
	}
	if n := c.Stats().OutlierEjectionsEnforcedTotal.Load(); n != 0 {
		t.Fatalf("ejected %d times without 3 consecutive errors", n)
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	clock := newFakeClock()
	var addrs []string
	for range 4 {
		b := newBackend(t)
		b.status.Store(503)
		addrs = append(addrs, b.addr())
	}
	s := build(t, nil, []*clusterv3.Cluster{outlierCluster("c", 1, 50, addrs...)}, nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	served(t, c, 20)
	st := c.Stats()
	if st.OutlierEjectionsActive.Load() != 2 {
		t.Fatalf("ejections_active = %d, want 2 (50%% of 4)", st.OutlierEjectionsActive.Load())
	}
	if st.OutlierEjectionsOverflow.Load() == 0 {
		t.Fatal("ejections_overflow not counted")
	}
}

func TestOutlierAlwaysEjectsOne(t *testing.T) {
	clock := newFakeClock()
	good, bad := newBackend(t), newBackend(t)
	bad.status.Store(500)
	// 10% of 2 hosts is 0.2 hosts, but Envoy ejects at least one.
	s := build(t, nil, []*clusterv3.Cluster{outlierCluster("c", 2, 10, good.addr(), bad.addr())}, nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	served(t, c, 6)
	if c.Stats().OutlierEjectionsActive.Load() != 1 {
		t.Fatalf("ejections_active = %d, want 1", c.Stats().OutlierEjectionsActive.Load())
	}
}

// Panic mode: with most hosts ejected, Envoy balances across all hosts
// rather than overloading the few healthy ones; with the threshold at 0
// (what Istio sets with outlier detection) no healthy host means 503 UH.
func TestPanicThreshold(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold *typev3.Percent
		wantUH    bool
		ejected   int64
	}{
		// Two of three ejected is already below 50% healthy: panic.
		{"default_50", nil, false, 2},
		{"disabled", &typev3.Percent{Value: 0}, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			var bs []*backend
			var addrs []string
			for range 3 {
				b := newBackend(t)
				b.status.Store(500)
				bs = append(bs, b)
				addrs = append(addrs, b.addr())
			}
			pc := outlierCluster("c", 1, 100, addrs...)
			if tc.threshold != nil {
				pc.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: tc.threshold}
			}
			s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Clock: clock})
			defer s.Close()
			c := s.Get("c")
			for range 3 {
				get(t, c, nil)
			}
			if c.Stats().OutlierEjectionsActive.Load() < tc.ejected {
				t.Fatalf("ejections_active = %d", c.Stats().OutlierEjectionsActive.Load())
			}
			_, _, _, err := get(t, c, nil)
			if tc.wantUH {
				if !isFlag(err, rflag.UH) {
					t.Fatalf("got %v, want UH", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("panic mode should still route: %v", err)
			}
			for _, b := range bs {
				b.hits.Store(0)
				b.status.Store(0) // no further ejections: the view stays put
			}
			for range 6 {
				get(t, c, nil)
			}
			for _, b := range bs {
				if b.hits.Load() != 2 {
					t.Fatalf("panic mode should spread evenly, got %d", b.hits.Load())
				}
			}
		})
	}
}

func TestEDSHealthStatus(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	cla := assignment("c", a.addr(), b.addr())
	cla.Endpoints[0].LbEndpoints[1].HealthStatus = corev3.HealthStatus_DRAINING
	// Panic threshold 0 so the single unhealthy host is really excluded.
	pc := edsCluster("c")
	pc.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
	s := build(t, nil, []*clusterv3.Cluster{pc}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla}, Options{})
	defer s.Close()
	if got := served(t, s.Get("c"), 6); got[a.addr()] != 6 {
		t.Fatalf("draining host got traffic: %v", got)
	}
}

func TestSuccessRateEjection(t *testing.T) {
	clock := newFakeClock()
	var addrs []string
	var bad *backend
	for i := range 5 {
		b := newBackend(t)
		if i == 0 {
			bad = b
			b.status.Store(500)
		}
		addrs = append(addrs, b.addr())
	}
	pc := staticCluster("c", addrs...)
	pc.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:          wrapperspb.UInt32(1000), // out of the way
		Interval:                 durationpb.New(10 * time.Second),
		SuccessRateRequestVolume: wrapperspb.UInt32(10),
		MaxEjectionPercent:       wrapperspb.UInt32(100),
	}
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	served(t, c, 100)
	clock.Advance(11 * time.Second)
	served(t, c, 1) // runs the interval sweep
	if c.Stats().OutlierEjectionsSuccessRate.Load() != 1 {
		t.Fatalf("success-rate ejections = %d", c.Stats().OutlierEjectionsSuccessRate.Load())
	}
	bad.hits.Store(0)
	served(t, c, 20)
	if bad.hits.Load() != 0 {
		t.Fatal("low success-rate host still served")
	}
}

func TestGatewayFailureFromConnectErrors(t *testing.T) {
	clock := newFakeClock()
	good := newBackend(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	pc := staticCluster("c", good.addr(), dead)
	pc.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    wrapperspb.UInt32(1000),
		ConsecutiveGatewayFailure:          wrapperspb.UInt32(2),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
		MaxEjectionPercent:                 wrapperspb.UInt32(100),
	}
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	for range 4 {
		get(t, c, nil) // connect failures count as 503 (gateway errors)
	}
	st := c.Stats()
	if st.OutlierEjectionsGatewayFailure.Load() != 1 {
		t.Fatalf("gateway-failure ejections = %d", st.OutlierEjectionsGatewayFailure.Load())
	}
	for range 5 {
		if _, _, att, err := get(t, c, nil); err != nil || att.Host != good.addr() {
			t.Fatalf("after ejection: %+v %v", att, err)
		}
	}
}

func TestFailurePercentageEjection(t *testing.T) {
	clock := newFakeClock()
	var addrs []string
	var bad *backend
	for i := range 5 {
		b := newBackend(t)
		if i == 0 {
			bad = b
			b.status.Store(503)
		}
		addrs = append(addrs, b.addr())
	}
	pc := staticCluster("c", addrs...)
	pc.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:                wrapperspb.UInt32(1000),
		EnforcingSuccessRate:           wrapperspb.UInt32(0),
		EnforcingFailurePercentage:     wrapperspb.UInt32(100),
		FailurePercentageRequestVolume: wrapperspb.UInt32(5),
		MaxEjectionPercent:             wrapperspb.UInt32(100),
	}
	s := build(t, nil, []*clusterv3.Cluster{pc}, nil, Options{Clock: clock})
	defer s.Close()
	c := s.Get("c")
	served(t, c, 50)
	if c.Stats().OutlierEjectionsFailurePercent.Load() != 0 {
		t.Fatal("ejected before the interval")
	}
	clock.Advance(10 * time.Second)
	served(t, c, 1)
	if c.Stats().OutlierEjectionsFailurePercent.Load() != 1 || c.Stats().OutlierEjectionsSuccessRate.Load() != 0 {
		t.Fatalf("failure-percentage=%d success-rate=%d", c.Stats().OutlierEjectionsFailurePercent.Load(),
			c.Stats().OutlierEjectionsSuccessRate.Load())
	}
	bad.hits.Store(0)
	served(t, c, 20)
	if bad.hits.Load() != 0 {
		t.Fatal("ejected host still served")
	}
}

// A Build whose result is discarded (the runtime failed elsewhere and
// closed it) must not stop the serving Set's ejected hosts from returning.
func TestOutlierSurvivesDiscardedBuild(t *testing.T) {
	clock := newFakeClock()
	good, bad := newBackend(t), newBackend(t)
	bad.status.Store(500)
	cs := []*clusterv3.Cluster{edsCluster("c")}
	cs[0].OutlierDetection = outlierCluster("x", 2, 100).OutlierDetection
	as := map[string]*endpointv3.ClusterLoadAssignment{"c": assignment("c", good.addr(), bad.addr())}
	s := build(t, nil, cs, as, Options{Clock: clock})
	defer s.Close()
	served(t, s.Get("c"), 4)
	if s.Get("c").Stats().OutlierEjectionsActive.Load() != 1 {
		t.Fatal("bad host not ejected")
	}
	// Endpoint change built beside, then thrown away.
	third := newBackend(t)
	as2 := map[string]*endpointv3.ClusterLoadAssignment{"c": assignment("c", good.addr(), third.addr())}
	discarded := build(t, s, cs, as2, Options{Clock: clock})
	discarded.Close()
	bad.status.Store(0)
	clock.Advance(31 * time.Second)
	if got := served(t, s.Get("c"), 4); got[bad.addr()] == 0 {
		t.Fatalf("ejected host never returned: %v", got)
	}
}
