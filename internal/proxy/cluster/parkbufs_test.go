package cluster

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// An idle pooled HTTP/1.1 connection holds no buffers (issue 17); the
// next request takes the same connection with buffers again.
func TestIdlePooledConnHoldsNoBuffers(t *testing.T) {
	b := newBackend(t)
	s := build(t, nil, []*clusterv3.Cluster{staticCluster("c", b.addr())}, nil, Options{})
	defer s.Close()
	c := s.Get("c")
	served(t, c, 3)
	h := c.cur.Load().members[0].h
	idle := func() []*h1conn {
		h.mu.Lock() // putH1 parks a connection before it adds it here
		defer h.mu.Unlock()
		return append([]*h1conn(nil), h.idle...)
	}
	cs := idle()
	if len(cs) != 1 {
		t.Fatalf("%d idle connections, want 1", len(cs))
	}
	if cs[0].br != nil || cs[0].bw != nil {
		t.Errorf("an idle connection holds a read buffer (%v) or a write buffer (%v)", cs[0].br != nil, cs[0].bw != nil)
	}
	served(t, c, 2)
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want the parked one reused", n)
	}
	if cs = idle(); len(cs) != 1 || cs[0].br != nil {
		t.Error("the connection is not parked again after its next request")
	}
}
