package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseCPSource(t *testing.T) {
	o, err := parse(nil, &bytes.Buffer{})
	if err != nil || !slices.Equal(o.cpSources, []string{sourceDir}) {
		t.Fatalf("default: %v %v", o.cpSources, err)
	}
	if o, err = parse([]string{"-cp-source", "dir,kube"}, &bytes.Buffer{}); err != nil || !slices.Equal(o.cpSources, []string{sourceDir, sourceKube}) {
		t.Fatalf("dir,kube: %v %v", o.cpSources, err)
	}
	if _, err := parse([]string{"-cp-source", "etcd"}, &bytes.Buffer{}); err == nil {
		t.Error("an unknown source accepted")
	}
}

func TestHeapLiveMB(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cp.log")
	log := "gc 1 @0.010s 1%: 0.01+0.2+0.01 ms clock, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P\n" +
		"some log line\n" +
		"gc 2 @1.000s 1%: 0.01+0.2+0.01 ms clock, 90->95->60 MB, 100 MB goal, 0 MB stacks, 0 MB globals, 2 P\n" +
		"gc 3 @2.000s 1%: 0.01+0.2+0.01 ms clock, 70->71->42 MB, 120 MB goal, 0 MB stacks, 0 MB globals, 2 P\n"
	if err := os.WriteFile(f, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if last, peak := heapLiveMB(f); last != 42 || peak != 60 {
		t.Errorf("last %v peak %v, want 42 and 60", last, peak)
	}
}
