package cluster

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

func TestEDSRoundRobinAndH1Reuse(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{edsCluster("c")},
		map[string]*endpointv3.ClusterLoadAssignment{"c": assignment("c", b1.addr(), b2.addr())}, Options{})
	defer s.Close()
	c := s.Get("c")
	if c == nil || c.Name() != "c" {
		t.Fatalf("Get(c) = %v", c)
	}
	if s.Get("missing") != nil {
		t.Fatal("Get(missing) must be nil")
	}
	seen := map[string]int{}
	for range 20 {
		code, body, att, err := get(t, c, nil)
		if err != nil || code != 200 {
			t.Fatalf("got %d %v", code, err)
		}
		if body != att.Host {
			t.Fatalf("attempt host %q but served by %q", att.Host, body)
		}
		seen[body]++
	}
	if seen[b1.addr()] != 10 || seen[b2.addr()] != 10 {
		t.Fatalf("round robin not even: %v", seen)
	}
	// Sequential requests reuse one keep-alive connection per host.
	if b1.conns.Load() != 1 || b2.conns.Load() != 1 {
		t.Fatalf("connections: %d %d, want 1 each", b1.conns.Load(), b2.conns.Load())
	}
	if got := c.Stats().UpstreamRqTotal.Load(); got != 20 {
		t.Fatalf("upstream_rq_total = %d", got)
	}
	if got := c.Stats().Get("upstream_rq_2xx"); got != 20 {
		t.Fatalf("upstream_rq_2xx = %d", got)
	}
}
