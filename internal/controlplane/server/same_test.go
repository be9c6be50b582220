package server

import (
	"testing"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/store"
)

func TestSameSnapshot(t *testing.T) {
	dir := t.TempDir()
	d, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply("x", []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80}\n"), config.Options{}); err != nil {
		t.Fatal(err)
	}
	build := func(ws ...*registry.Workload) *model.Snapshot {
		snap, err := registry.Build(d.Resources(), ws)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	base := build()
	if !sameSnapshot(base, build()) {
		t.Error("rebuilding unchanged input is a change")
	}
	other := &registry.Workload{Name: "db", Namespace: "default", Address: "10.0.0.9", Labels: map[string]string{"app": "db"}, Source: registry.SourceProxy}
	if !sameSnapshot(base, build(other)) {
		t.Error("a workload no service selects changed the snapshot")
	}
	web := &registry.Workload{Name: "web-1", Namespace: "default", Address: "10.0.0.8", Labels: map[string]string{"app": "web"}, Source: registry.SourceProxy}
	if sameSnapshot(base, build(web)) {
		t.Error("a new endpoint went unnoticed")
	}
	if _, err := d.Apply("y", []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: web\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web}\n"), config.Options{}); err != nil {
		t.Fatal(err)
	}
	if sameSnapshot(base, build()) {
		t.Error("a new VirtualService went unnoticed")
	}
}
