package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// BenchmarkBuild: a snapshot of 1,000 Services, each selecting its own
// WorkloadEntry, and 20 ServiceEntries selecting workloads by label (the
// control plane builds one per config change).
func BenchmarkBuild(b *testing.B) {
	var y strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&y, `apiVersion: v1
kind: Service
metadata: {name: svc-%[1]d, namespace: default}
spec:
  selector: {app: svc-%[1]d}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-%[1]d, namespace: default}
spec:
  address: 198.18.%[2]d.%[3]d
  labels: {app: svc-%[1]d, tier: web}
---
`, i, i/250, i%250+1)
	}
	for i := range 20 {
		fmt.Fprintf(&y, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se-%[1]d, namespace: default}
spec:
  hosts: [se-%[1]d.example]
  ports: [{name: http, number: 80, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: svc-%[1]d}}
---
`, i)
	}
	res, err := config.LoadReader("bench.yaml", strings.NewReader(y.String()), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := Build(res, nil)
	if err != nil {
		b.Fatal(err)
	}
	eps := 0
	for _, s := range snap.Services {
		eps += len(s.Endpoints)
	}
	if len(snap.Services) != 1020 || eps != 1020 {
		b.Fatalf("%d services with %d endpoints, want 1020 and 1020", len(snap.Services), eps)
	}
	b.ReportAllocs()
	for b.Loop() {
		Build(res, nil)
	}
}
