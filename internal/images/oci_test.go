package images

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// fakeSpec is an image of one "binary" per architecture, so the layout
// can be checked without compiling anything.
func fakeSpec() spec {
	return spec{
		name: "fake",
		run:  RunConfig{User: "65532:65532", Entrypoint: []string{"/usr/local/bin/app"}},
		layers: func(in input) ([]namedLayer, error) {
			return []namedLayer{base(), {what: "app", layer: layer{files: []file{
				{Name: "/usr/local/bin/app", Mode: 0o755, Src: filepath.Join(in.binDir, "app")},
			}}}}, nil
		},
	}
}

func fakeBins(t *testing.T, arches ...string) map[string]string {
	t.Helper()
	bins := map[string]string{}
	for _, a := range arches {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "app"), []byte("binary for "+a), 0o755); err != nil {
			t.Fatal(err)
		}
		bins[a] = dir
	}
	return bins
}

// Several architectures make one OCI index per image, with a manifest per
// platform, each layer content-checked on the way back; the same inputs
// give byte-identical tarballs.
func TestMultiArchLayout(t *testing.T) {
	arches := []string{"amd64", "arm64"}
	bins := fakeBins(t, arches...)
	var tars [][]byte
	for i := 0; i < 2; i++ {
		out := t.TempDir()
		cache := filepath.Join(out, ".cache")
		if err := os.MkdirAll(filepath.Join(cache, "blobs"), 0o755); err != nil {
			t.Fatal(err)
		}
		img, err := buildImage(context.Background(), fakeSpec(), arches, bins, out, cache, "", "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		if img.Ref != "weft.local/fake:dev" {
			t.Errorf("ref %s", img.Ref)
		}
		a, err := Read(img.Path)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Index.Manifests) != 2 || a.Index.Manifests[0].MediaType != mediaIndex ||
			a.Index.Manifests[1].Annotations[annotationImageName] != "weft.local/fake:1.2.3" {
			t.Fatalf("index.json: %+v", a.Index)
		}
		if len(a.Images) != 2 {
			t.Fatalf("%d platform images, want 2", len(a.Images))
		}
		for j, im := range a.Images {
			want := Platform{OS: "linux", Architecture: arches[j]}
			if arches[j] == "arm64" {
				want.Variant = "v8"
			}
			if im.Platform != want {
				t.Errorf("image %d: platform %+v, want %+v", j, im.Platform, want)
			}
			if got := string(im.Content["usr/local/bin/app"]); got != "binary for "+arches[j] {
				t.Errorf("%s: app is %q", arches[j], got)
			}
		}
		b, err := os.ReadFile(img.Path)
		if err != nil {
			t.Fatal(err)
		}
		tars = append(tars, b)
	}
	if !bytes.Equal(tars[0], tars[1]) {
		t.Error("the same inputs gave different tarballs")
	}
}

// A tampered blob fails Read.
func TestReadChecksDigests(t *testing.T) {
	bins := fakeBins(t, "amd64")
	out := t.TempDir()
	cache := filepath.Join(out, ".cache")
	if err := os.MkdirAll(filepath.Join(cache, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := buildImage(context.Background(), fakeSpec(), []string{"amd64"}, bins, out, cache, "", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"Entrypoint"`))
	if i < 0 {
		t.Fatal("no config in the tarball")
	}
	b[i+2] = 'e' // same size, other content
	bad := filepath.Join(out, "bad.tar")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad); err == nil {
		t.Fatal("Read accepted a blob whose digest does not match")
	}
}
