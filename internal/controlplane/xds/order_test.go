package xds

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/meshtest"
)

// TestPushOrder: a change that touches every type reaches a proxy in the
// order an ADS server owes it (clusters, assignments, then routes: a
// route never names a cluster the proxy does not have yet), over state
// of the world and delta.
func TestPushOrder(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%t", delta), func(t *testing.T) {
			s := startServerWith(t, benchSnapshot(3), nil)
			var mu sync.Mutex
			var got []string
			m := meta("app")
			m.Capture = true // outbound listeners with routes by port
			c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{Delta: delta, Observe: func(typeURL string, _ []*anypb.Any) {
				mu.Lock()
				got = append(got, typeURL)
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id := m.ID()
			for n := 4; n < 7; n++ {
				waitStatus(t, s.Server, id, synced("CDS", "EDS", "LDS", "RDS"))
				mu.Lock()
				got = nil
				mu.Unlock()
				s.Update(benchSnapshot(n)) // one more service: CDS, EDS and RDS change
				s.Flush()
				host := fmt.Sprintf("svc-%d.default.svc.cluster.local", n-1)
				meshtest.WaitFor(t, "the new route", func() bool {
					return routeHas(c, host)
				})
				mu.Lock()
				order := slices.Clone(got)
				mu.Unlock()
				ci, ei, ri := slices.Index(order, clusterType), slices.Index(order, endpointType), slices.Index(order, routeType)
				if ci < 0 || ei < 0 || ri < 0 || ci > ei || ei > ri {
					t.Fatalf("service %d: responses in the order %v, want clusters, assignments, routes", n, short(order))
				}
			}
		})
	}
}

// routeHas reports whether c holds a route configuration naming host.
func routeHas(c *meshtest.XDSClient, host string) bool {
	for _, r := range c.Resources(routeType) {
		if strings.Contains(fmt.Sprint(r), host) {
			return true
		}
	}
	return false
}

func short(ts []string) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = ShortType(t)
	}
	return out
}
