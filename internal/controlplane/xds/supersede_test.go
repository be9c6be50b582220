package xds

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// perProxyTranslate gives each proxy a cluster named after its app label,
// so a proxy served another's config shows it.
func perProxyTranslate(snap *model.Snapshot, p *model.Proxy) *translate.Output {
	out := fakeTranslate(snap, p)
	out.Clusters = append(out.Clusters, &clusterv3.Cluster{Name: "inbound|" + p.Meta.Labels["app"],
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}})
	return out
}

// dialHolding connects to addr as m and waits until the stream holds
// cluster; the client is closed when the test ends.
func dialHolding(t *testing.T, addr string, m *node.Meta, delta bool, cluster string) *meshtest.XDSClient {
	t.Helper()
	c, err := meshtest.DialXDS(addr, m, meshtest.XDSClientOptions{Delta: delta})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.WaitFor(ctx(t), func(c *meshtest.XDSClient) bool {
		return c.Resources(resource.ClusterType)[cluster] != nil
	}); err != nil {
		t.Fatalf("%s: %v", cluster, err)
	}
	return c
}

// streamEnd waits for c's stream to end and returns the error that ended
// it (a timeout error if it did not end within ctx's 5 s).
func streamEnd(t *testing.T, c *meshtest.XDSClient) error {
	return c.WaitFor(ctx(t), func(*meshtest.XDSClient) bool { return false })
}

// A second stream with a live proxy's node ID (issue 18 item 10): the
// newer stream wins, the older is ended, and neither is served the other's
// config; the older stream's end removes nothing. Before: the real proxy
// was pushed the impostor's inbound cluster and stayed connected.
func TestSecondStreamForNodeIDReplacesTheFirst(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%t", delta), func(t *testing.T) {
			s := startServerWith(t, snapshot("10.0.0.1"), perProxyTranslate)
			real := meta("reviews")
			a := dialHolding(t, s.addr, real, delta, "inbound|reviews")
			waitStatus(t, s.Server, real.ID(), synced("CDS", "EDS"))

			imp := meta("reviews")
			imp.Labels = map[string]string{"app": "impostor"}
			if imp.ID() != real.ID() {
				t.Fatal("test needs the same node ID")
			}
			b := dialHolding(t, s.addr, imp, delta, "inbound|impostor")
			// The older stream was ended, without being sent the newer's config.
			if err := streamEnd(t, a); err == nil || !strings.Contains(err.Error(), "replaced") {
				t.Fatalf("older stream not ended as replaced: %v", err)
			}
			if a.Resources(resource.ClusterType)["inbound|impostor"] != nil {
				t.Fatal("the older stream was served the newer stream's config")
			}
			waitStatus(t, s.Server, real.ID(), synced("CDS", "EDS"))

			// The real proxy comes back: it wins, the impostor is ended,
			// and the impostor's end leaves the real proxy connected.
			dialHolding(t, s.addr, real, delta, "inbound|reviews")
			if err := streamEnd(t, b); err == nil {
				t.Fatal("impostor stream not ended")
			}
			b.Close()
			waitStatus(t, s.Server, real.ID(), synced("CDS", "EDS"))
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.disc) != 0 {
				t.Fatalf("a replaced stream's end was reported as a disconnect: %v", s.disc)
			}
			if len(s.conn) != 3 {
				t.Fatalf("connects = %v", s.conn)
			}
			if s.metrics.connected.Load() != 1 {
				t.Fatalf("connected gauge = %d", s.metrics.connected.Load())
			}
		})
	}
}

// A draining proxy handing over to its restarted successor reconnects
// draining: it must not take the node back from the successor.
func TestDrainingStreamDoesNotReplaceServing(t *testing.T) {
	s := startServerWith(t, snapshot("10.0.0.1"), perProxyTranslate)
	succ := meta("reviews")
	dialHolding(t, s.addr, succ, true, "inbound|reviews")
	old := meta("reviews")
	old.Lifecycle = node.LifecycleDraining
	b, err := meshtest.DialXDS(s.addr, old, meshtest.XDSClientOptions{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := streamEnd(t, b); err == nil || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("draining stream not refused: %v", err)
	}
	waitStatus(t, s.Server, succ.ID(), synced("CDS", "EDS"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conn) != 1 || len(s.disc) != 0 {
		t.Fatalf("connects %v, disconnects %v", s.conn, s.disc)
	}
}
