package cluster

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
)

func wire(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BuildEncoded keeps an EDS cluster's assignment as bytes only, carries
// the cluster over when the assignment is the same message even in other
// bytes (fields in another order, as a non-deterministic encoder may
// send), and rebuilds it when the assignment changed.
func TestBuildEncodedCarriesOverTheSameAssignment(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	cs := []*clusterv3.Cluster{edsCluster("c")}
	a := assignment("c", b1.addr())
	raw := wire(t, a)
	s1, err := BuildEncoded(nil, cs, map[string][]byte{"c": raw}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	c1 := s1.Get("c")
	if c1.cla != nil || c1.claRaw == nil {
		t.Fatalf("EDS cluster keeps the decoded assignment (cla %v, %d bytes raw)", c1.cla != nil, len(c1.claRaw))
	}
	served(t, c1, 2)

	// The same message, cluster_name written after the endpoints.
	reordered := append(wire(t, &endpointv3.ClusterLoadAssignment{Endpoints: a.GetEndpoints()}),
		wire(t, &endpointv3.ClusterLoadAssignment{ClusterName: "c"})...)
	if string(reordered) == string(raw) {
		t.Fatal("test setup: the reordered encoding is the same bytes")
	}
	s2, err := BuildEncoded(s1, cs, map[string][]byte{"c": reordered}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Get("c") != c1 {
		t.Fatal("the same assignment in other bytes rebuilt the cluster")
	}

	s3, err := BuildEncoded(s2, cs, map[string][]byte{"c": wire(t, assignment("c", b2.addr()))}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.Get("c") == c1 || s3.Get("c").Stats() != c1.Stats() {
		t.Fatal("a changed assignment must rebuild the cluster over the same state")
	}
	served(t, s3.Get("c"), 1)
	if b2.conns.Load() != 1 {
		t.Fatalf("the new endpoint got %d connections", b2.conns.Load())
	}

	// No assignment yet, twice: carried over too.
	s4, err := BuildEncoded(s3, cs, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s4.Close()
	s5, err := BuildEncoded(s4, cs, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s5.Close()
	if s5.Get("c") != s4.Get("c") {
		t.Fatal("a cluster without an assignment was rebuilt")
	}

	if _, err := BuildEncoded(nil, cs, map[string][]byte{"c": {0xff}}, nil, Options{}); err == nil {
		t.Fatal("an assignment that does not decode was accepted")
	}
}
