package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamplesLoad checks that every shipped example (except the invalid
// ones) decodes and validates. The analyzer test covers cross-resource
// checks.
func TestExamplesLoad(t *testing.T) {
	root := filepath.Join("..", "..", "examples")
	res, err := LoadPaths([]string{root}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 10 {
		t.Fatalf("only %d resources in examples/", len(res))
	}
	for _, r := range res {
		for _, e := range Validate(r) {
			t.Errorf("%v", e)
		}
	}
	tasks, err := os.ReadDir(filepath.Join(root, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range tasks {
		res, err := LoadPaths([]string{filepath.Join(root, "tasks", d.Name())}, Options{})
		if err != nil {
			t.Errorf("%s: %v", d.Name(), err)
		}
		for _, r := range res {
			for _, e := range Validate(r) {
				t.Errorf("%v", e)
			}
		}
	}
}
