package translate

import (
	"fmt"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// syntheticMesh has n services (HTTP and TCP port, 3 endpoints each), a
// DestinationRule with two subsets and a VirtualService splitting traffic
// for every service.
func syntheticMesh(n int) *model.Snapshot {
	snap := &model.Snapshot{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc%03d", i)
		s := &model.Service{Hostname: name + ".default.svc.cluster.local", Name: name, Namespace: "default",
			Addresses: []string{fmt.Sprintf("198.19.%d.%d", i/250, i%250+1)},
			Ports:     []*model.Port{{Name: "http", Number: 8080, Protocol: "HTTP"}, {Name: "tcp", Number: 9000, Protocol: "TCP"}}}
		for j := 0; j < 3; j++ {
			for _, sp := range []uint32{8080, 9000} {
				s.Endpoints = append(s.Endpoints, &model.Endpoint{Address: fmt.Sprintf("198.18.%d.%d", i%250, j+1), Port: sp, ServicePort: sp,
					Healthy: true, Labels: map[string]string{"app": name, "version": fmt.Sprintf("v%d", j%2+1)}, WorkloadName: name, Namespace: "default"})
			}
		}
		snap.Services = append(snap.Services, s)
		dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		dr.Spec.Host = name
		dr.Spec.Subsets = []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}
		snap.DestinationRules = append(snap.DestinationRules, dr)
		vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		vs.Spec.Hosts = []string{name}
		vs.Spec.Http = []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
			{Destination: &networking.Destination{Host: name, Subset: "v1"}, Weight: 90},
			{Destination: &networking.Destination{Host: name, Subset: "v2"}, Weight: 10},
		}}}
		snap.VirtualServices = append(snap.VirtualServices, vs)
	}
	return snap
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			snap := syntheticMesh(n)
			_, p := handSnapshot()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if out := Build(snap, p); len(out.Clusters) == 0 {
					b.Fatal("no clusters")
				}
			}
		})
	}
}

func TestSyntheticMeshChecks(t *testing.T) {
	_, p := handSnapshot()
	out := Build(syntheticMesh(50), p)
	if err := out.Check(); err != nil {
		t.Fatal(err)
	}
	// 50 services × 2 ports × (default + 2 subsets) + passthrough + blackhole + inbound.
	if got, want := len(out.Clusters), 50*2*3+3; got != want {
		t.Errorf("clusters = %d, want %d", got, want)
	}
}
