package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad: no input crashes or hangs the loader, the validator or the
// analyzers. Seeds are the shipped examples plus testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"../../examples", "../../examples/invalid", "../../examples/tasks"} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && filepath.Ext(p) == ".yaml" {
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b)
				}
			}
			return nil
		})
	}
	f.Add([]byte(aliasBomb()))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		// The fuzzer has no per-input timeout: a stuck input would just
		// stall the worker. Crash instead, so the input is saved.
		watchdog := time.AfterFunc(20*time.Second, func() {
			panic(fmt.Sprintf("loader hang on %d-byte input %q", len(data), data))
		})
		defer watchdog.Stop()
		res, err := LoadReader("f.yaml", bytes.NewReader(data), Options{})
		if err == nil {
			for _, r := range res {
				if r.Name == "" || r.Kind == "" || r.Object == nil || r.Meta == nil {
					t.Fatalf("incomplete resource without error: %+v", r)
				}
			}
		}
		for _, r := range res {
			Validate(r)
		}
		Analyze(res, AnalyzeOptions{})
		// Generous: the machine is shared; a hang is orders of magnitude more.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v on %d bytes", d, len(data))
		}
	})
}
