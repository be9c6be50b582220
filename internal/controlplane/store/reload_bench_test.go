package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkReload is a reload after one file of 1,000 Services, each
// with a WorkloadEntry, changed (one address moved; the bench's endpoint
// change): it is parsed and validated before the control plane can push.
func BenchmarkReload(b *testing.B) {
	dir := b.TempDir()
	var y strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&y, "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%04[1]d\n  namespace: default\nspec:\n  selector:\n    app: svc-%04[1]d\n  ports:\n  - name: http\n    port: 8080\n---\n"+
			"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: svc-%04[1]d\n  namespace: default\nspec:\n  address: 198.18.%[2]d.%[3]d\n  labels:\n    app: svc-%04[1]d\n---\n", i, 1+i/250, 1+i%250)
	}
	path := filepath.Join(dir, "services.yaml")
	d, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	versions := [2]string{y.String(), strings.Replace(y.String(), "address: 198.18.1.1\n", "address: 198.19.1.7\n", 1)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if err := os.WriteFile(path, []byte(versions[i%2]), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if changed, err := d.Reload(); err != nil || !changed {
			b.Fatalf("reload: changed %v, %v", changed, err)
		}
	}
	if n := len(d.Resources()); n != 2000 {
		b.Fatalf("%d resources, want 2000", n)
	}
}
