package store

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// TestGetYAML: Get gives each served resource's own document, from the
// last good version of its file (split on demand): after an edit the new
// one, after an invalid edit still the last good one.
func TestGetYAML(t *testing.T) {
	dir := t.TempDir()
	two := func(subset string) string {
		return strings.Replace(reviewsVS, "subset: v1", "subset: "+subset, 1) + "---\n" + ratingsVS
	}
	write(t, dir, "vs.yaml", two("v1"))
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	yamlOf := func(name string) string {
		t.Helper()
		es := d.Get(config.KindVirtualService, "default", name)
		if len(es) != 1 {
			t.Fatalf("%s served %d times", name, len(es))
		}
		return string(es[0].YAML)
	}
	if y := yamlOf("reviews"); !strings.Contains(y, "name: reviews") || strings.Contains(y, "name: ratings") || !strings.Contains(y, "subset: v1") {
		t.Fatalf("reviews YAML:\n%s", y)
	}
	write(t, dir, "vs.yaml", two("v2"))
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if y := yamlOf("reviews"); !strings.Contains(y, "subset: v2") {
		t.Fatalf("after the edit, reviews YAML:\n%s", y)
	}
	write(t, dir, "vs.yaml", strings.Replace(two("v3"), "subset: v3", "subnet: v3", 1)) // unknown field
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if y := yamlOf("reviews"); !strings.Contains(y, "subset: v2") {
		t.Fatalf("after an invalid edit, reviews YAML (want the last good, v2):\n%s", y)
	}
}
