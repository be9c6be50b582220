package store

import (
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// FuzzApply feeds arbitrary bytes to Apply (the HTTP API's input): it must
// never panic, and must not write anything it rejects.
func FuzzApply(f *testing.F) {
	f.Add([]byte(reviewsVS))
	f.Add([]byte(ratingsVS + "---\n" + reviewsVS))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- " + "{apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 80}]}}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("{\"kind\": \"VirtualService\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		dir := t.TempDir()
		d, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Apply("fuzz.yaml", data, config.Options{}); err != nil {
			files, _ := ListFiles(dir)
			if len(files) != 0 {
				t.Fatalf("rejected input (%v) left files %v", err, files)
			}
		}
		splitDocs("fuzz.yaml", data, config.Options{})
	})
}
