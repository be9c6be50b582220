package registry

import (
	"fmt"
	"slices"
	"testing"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// TestServiceIndexMatchesScan: the index answers exactly what the scan of
// every service does (same services, same order) for proxies by name,
// by address only, in other namespaces and without a match.
func TestServiceIndexMatchesScan(t *testing.T) {
	snap := &model.Snapshot{}
	for i := range 30 {
		s := &model.Service{Name: fmt.Sprintf("s%d", i), Namespace: "default"}
		for j := range 3 {
			ns := "default"
			if (i+j)%4 == 0 {
				ns = "other"
			}
			s.Endpoints = append(s.Endpoints, &model.Endpoint{Address: fmt.Sprintf("10.0.0.%d", (i*3+j)%7), Namespace: ns, WorkloadName: fmt.Sprintf("w%d", (i+j)%5)})
		}
		snap.Services = append(snap.Services, s)
	}
	x := IndexServices(snap)
	checked := 0
	for _, ns := range []string{"default", "other", "none"} {
		for ip := range 8 {
			for w := range 6 {
				m := &node.Meta{Namespace: ns, IP: fmt.Sprintf("10.0.0.%d", ip), Name: fmt.Sprintf("w%d", w)}
				want, got := ServicesFor(snap, m), x.For(m)
				if !slices.Equal(want, got) {
					t.Errorf("%s/%s/%s: index %d services, scan %d", ns, m.IP, m.Name, len(got), len(want))
				}
				if len(want) > 0 {
					checked++
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no proxy matched any service: the test checks nothing")
	}
	if x.For(&node.Meta{Namespace: "default"}) != nil || IndexServices(nil).For(&node.Meta{IP: "10.0.0.1"}) != nil {
		t.Error("a proxy without address, or an empty index, got services")
	}
}
