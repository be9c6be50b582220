package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/weftmesh/weft/internal/config"
)

const reviewsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
`

const ratingsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
`

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func subsetOf(t *testing.T, d *Dir) string {
	t.Helper()
	es := d.Get(config.KindVirtualService, "default", "reviews")
	if len(es) != 1 {
		t.Fatalf("reviews served %d times", len(es))
	}
	return es[0].Resource.Object.(*networkingv1.VirtualService).Spec.GetHttp()[0].GetRoute()[0].GetDestination().GetSubset()
}

func TestInvalidEditKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", reviewsVS)
	var changes atomic.Int32
	d, err := Open(dir, Options{OnChange: func() { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if subsetOf(t, d) != "v1" {
		t.Fatal("initial load")
	}
	// An unknown field on line 12: rejected, v1 keeps serving.
	write(t, dir, "reviews.yaml", strings.Replace(reviewsVS, "subset: v1", "subnet: v2", 1))
	changed, err := d.Reload()
	if err != nil || changed {
		t.Fatalf("Reload = %v, %v; an invalid edit must not change what is served", changed, err)
	}
	if subsetOf(t, d) != "v1" {
		t.Fatal("last good version not kept")
	}
	st := d.Status()
	if len(st) != 1 || !st[0].Stale || len(st[0].Errors) == 0 || !strings.Contains(st[0].Errors[0], "reviews.yaml:12") || !strings.Contains(st[0].Errors[0], "subnet") {
		t.Fatalf("status = %+v, want the error at reviews.yaml:12", st)
	}
	var m strings.Builder
	d.WriteMetrics(&m)
	if !strings.Contains(m.String(), `weft_config_errors{file="reviews.yaml"} 1`) {
		t.Errorf("metrics:\n%s", m.String())
	}
	// A validation error (not a decode error) is rejected too.
	write(t, dir, "reviews.yaml", strings.Replace(strings.Replace(reviewsVS, "subset: v1", "subset: v2", 1), "name: reviews", "name: Reviews_2", 1))
	d.Reload()
	if subsetOf(t, d) != "v1" || len(d.Status()[0].Errors) == 0 {
		t.Fatalf("invalid name accepted: %+v", d.Status())
	}
	// Fixing the file serves the new version and clears the error.
	write(t, dir, "reviews.yaml", strings.Replace(reviewsVS, "subset: v1", "subset: v2", 1))
	if changed, _ := d.Reload(); !changed || subsetOf(t, d) != "v2" || d.Status()[0].Errors != nil {
		t.Fatalf("fixed file not served: changed=%v status=%+v", changed, d.Status())
	}
	if changes.Load() != 1 {
		t.Errorf("OnChange called %d times, want 1", changes.Load())
	}
	// Removing the file removes its resources.
	os.Remove(filepath.Join(dir, "reviews.yaml"))
	if changed, _ := d.Reload(); !changed || len(d.Resources()) != 0 {
		t.Fatalf("removed file still served")
	}
}

func TestNewInvalidFileServesNothing(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  hosts: [a]\n  bogus: 1\n")
	write(t, dir, "ok.yaml", ratingsVS)
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := d.Resources(); len(rs) != 1 || rs[0].Name != "ratings" {
		t.Fatalf("served %v", rs)
	}
	if st := d.Status(); !strings.Contains(strings.Join(st[0].Errors, "\n"), "bad.yaml:7") {
		t.Fatalf("status = %+v", st)
	}
}

func TestDuplicateAcrossFilesRejected(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", reviewsVS)
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "b.yaml", strings.Replace(reviewsVS, "subset: v1", "subset: v3", 1))
	d.Reload()
	if subsetOf(t, d) != "v1" {
		t.Fatal("a new file took over a resource another file defines")
	}
	var dup bool
	for _, st := range d.Status() {
		if st.File == "b.yaml" && strings.Contains(strings.Join(st.Errors, ""), "already defined in a.yaml") {
			dup = true
		}
	}
	if !dup {
		t.Fatalf("status = %+v", d.Status())
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bookinfo.yaml", ratingsVS+"---\n"+reviewsVS)
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Update a resource where it lives: the other document is kept.
	res, err := d.Apply("edit.yaml", []byte(strings.Replace(reviewsVS, "subset: v1", "subset: v2", 1)), config.Options{})
	if err != nil || len(res) != 1 || res[0].Action != Configured || res[0].File != "bookinfo.yaml" {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	if subsetOf(t, d) != "v2" || len(d.Get(config.KindVirtualService, "", "ratings")) != 1 {
		t.Fatal("update not served or other document lost")
	}
	// Same content again: unchanged.
	res, err = d.Apply("edit.yaml", []byte(strings.Replace(reviewsVS, "subset: v1", "subset: v2", 1)), config.Options{})
	if err != nil || res[0].Action != Unchanged {
		t.Fatalf("re-apply = %+v, %v", res, err)
	}
	// A new resource in another namespace gets its own file.
	res, err = d.Apply("-", []byte(strings.Replace(ratingsVS, "name: ratings", "name: ratings\n  namespace: prod", 1)), config.Options{})
	if err != nil || res[0].Action != Created || res[0].File != "virtualservice-prod-ratings.yaml" {
		t.Fatalf("create = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "virtualservice-prod-ratings.yaml")); err != nil {
		t.Fatal(err)
	}
	// Invalid input: rejected with file:line, nothing written.
	before, _ := os.ReadFile(filepath.Join(dir, "bookinfo.yaml"))
	_, err = d.Apply("mine.yaml", []byte(strings.Replace(reviewsVS, "subset: v1", "subnet: v9", 1)), config.Options{})
	var el config.ErrorList
	if !errors.As(err, &el) || !strings.Contains(err.Error(), "mine.yaml:12") {
		t.Fatalf("invalid apply err = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "bookinfo.yaml"))
	if string(before) != string(after) {
		t.Fatal("invalid apply modified the file")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
	// Delete one document, then the other: the file goes.
	if _, err := d.Delete([]config.Key{{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"}}); err != nil {
		t.Fatal(err)
	}
	if len(d.Get(config.KindVirtualService, "default", "")) != 1 {
		t.Fatal("delete removed the wrong documents")
	}
	if _, err := d.DeleteDocs("x", []byte(ratingsVS), config.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bookinfo.yaml")); !os.IsNotExist(err) {
		t.Fatalf("empty file not removed: %v", err)
	}
	if _, err := d.Delete([]config.Key{{Kind: config.KindVirtualService, Namespace: "default", Name: "nope"}}); err == nil {
		t.Fatal("deleting an unknown resource succeeded")
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", reviewsVS)
	changed := make(chan struct{}, 10)
	d, err := Open(dir, Options{Debounce: 20 * time.Millisecond, OnChange: func() { changed <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Watch(ctx) }()
	defer func() { cancel(); <-done }()
	// The watch may start after this write; its initial Reload catches it.
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	write(t, filepath.Join(dir, "sub"), "ratings.yaml", ratingsVS)
	deadline := time.After(5 * time.Second)
	for len(d.Get(config.KindVirtualService, "default", "ratings")) == 0 {
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("new file in a new subdirectory not picked up")
		}
	}
	write(t, dir, "reviews.yaml", strings.Replace(reviewsVS, "subset: v1", "subset: v3", 1))
	for subsetOf(t, d) != "v3" {
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("edit not picked up")
		}
	}
}

func TestWeftIgnore(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", reviewsVS)
	os.MkdirAll(filepath.Join(dir, "invalid"), 0o755)
	write(t, filepath.Join(dir, "invalid"), "bad.yaml", "kind: Nope\n")
	os.MkdirAll(filepath.Join(dir, "tasks", "x"), 0o755)
	write(t, filepath.Join(dir, "tasks", "x"), "ratings.yaml", ratingsVS)
	write(t, dir, "notes.yml", "kind: Nope\n")
	write(t, dir, IgnoreFile, "# examples layout\ninvalid/\n/tasks/\n*.yml\n")
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := d.Status()
	if len(st) != 1 || st[0].File != "reviews.yaml" || len(d.Resources()) != 1 {
		t.Fatalf("status = %+v", st)
	}
}

// A Kubernetes ConfigMap volume: files are symlinks into a hidden ..data
// directory that is swapped atomically on update.
func TestWatchConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mk := func(gen string, data string) {
		os.MkdirAll(filepath.Join(dir, gen), 0o755)
		write(t, filepath.Join(dir, gen), "reviews.yaml", data)
	}
	mk("..2026_1", reviewsVS)
	if err := os.Symlink("..2026_1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "reviews.yaml"), filepath.Join(dir, "reviews.yaml")); err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 10)
	d, err := Open(dir, Options{Debounce: 20 * time.Millisecond, OnChange: func() { changed <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	if subsetOf(t, d) != "v1" {
		t.Fatal("symlinked file not loaded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Watch(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(5 * time.Second)
	// First prove the watch is live, so the swap below is seen as events.
	write(t, dir, "ratings.yaml", ratingsVS)
	for len(d.Get(config.KindVirtualService, "default", "ratings")) == 0 {
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("watch not live")
		}
	}
	mk("..2026_2", strings.Replace(reviewsVS, "subset: v1", "subset: v2", 1))
	os.Symlink("..2026_2", filepath.Join(dir, "..data_tmp"))
	os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	for subsetOf(t, d) != "v2" {
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("ConfigMap-style swap not picked up")
		}
	}
}
