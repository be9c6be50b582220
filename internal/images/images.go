// Package images builds Weft's container images as OCI image-layout
// tarballs from the module's own static binaries, with no registry and no
// container engine: `ctr -n k8s.io images import` loads them into the
// containerd of a test node, and `make images` writes them for linux/amd64
// and linux/arm64 as one multi-arch index per image.
//
// Every layer is a reproducible tar (fixed times, sorted entries, root-owned
// unless a file says otherwise), so unchanged inputs give unchanged digests:
// Build compresses a layer once (cached by its diffID) and rewrites a
// tarball only when its index changes. Images run as non-root where Istio's
// do: the proxy as UID 1337 (istio-proxy), the control plane as 1337 too,
// pause as 65535.
package images

import (
	"context"
	"encoding/json"

	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/weftmesh/weft/internal/version"
)

// Registry is the host part of every reference Build produces; nothing is
// pulled from it (the kubelet must find the images already imported).
const Registry = "weft.local"

// Tag is the tag of every reference Build produces.
const Tag = "dev"

// Image is one built image: its reference and the tarball holding it.
type Image struct{ Ref, Path string }

// Refs lists the references Build produces, in its order, without
// building anything.
func Refs() []string {
	var refs []string
	for _, s := range specs() {
		refs = append(refs, Registry+"/"+s.name+":"+Tag)
	}
	return refs
}

// binaries are the main packages Build compiles, by output name.
var binaries = []struct{ name, pkg string }{
	{"weft", "./cmd/weft"},
	{"weft-proxy", "./cmd/weft-proxy"},
	{"weft-pause", "./cmd/weft-pause"},
	{"weft-sample", "./cmd/weft-sample"},
}

// Build compiles the binaries for linux/<arch> (CGO_ENABLED=0, -trimpath)
// from the module at root and writes one tarball per image into outDir,
// importable with `ctr -n k8s.io images import`, reusing outputs whose
// inputs did not change. With no arches it builds the host's. With several,
// each tarball holds one OCI index with a manifest per architecture.
func Build(ctx context.Context, root, outDir string, arches ...string) ([]Image, error) {
	if len(arches) == 0 {
		arches = []string{runtime.GOARCH}
	}
	seen := map[string]bool{}
	for _, a := range arches {
		if _, err := platform(a); err != nil {
			return nil, err
		}
		if seen[a] {
			return nil, fmt.Errorf("architecture %q given twice", a)
		}
		seen[a] = true
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return nil, err
	}
	cache := filepath.Join(outDir, ".cache")
	if err := os.MkdirAll(filepath.Join(cache, "blobs"), 0o755); err != nil {
		return nil, err
	}
	ver, commit := stamp(ctx, root)
	bins := map[string]string{} // arch → directory of that arch's binaries
	for _, a := range arches {
		dir := filepath.Join(cache, "bin", "linux_"+a)
		if err := compile(ctx, root, dir, a, ver, commit); err != nil {
			return nil, err
		}
		bins[a] = dir
	}
	// Debian's packages for iptables and busybox, shared by every output
	// directory of this checkout.
	debs := filepath.Join(root, ".cache", "images-debs")
	var out []Image
	for _, s := range specs() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := buildImage(ctx, s, arches, bins, outDir, cache, debs, ver)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.name, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// stamp is the version and commit `make build` links into the binaries
// (git describe of the module), or "" outside a git checkout.
func stamp(ctx context.Context, root string) (ver, commit string) {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	return git("describe", "--tags", "--always", "--dirty"), git("rev-parse", "HEAD")
}

// compile builds every binary for linux/arch into dir, stamped with ver
// and commit as the Makefile does. Go skips the link when an output is
// already up to date, so an unchanged tree costs little.
func compile(ctx context.Context, root, dir, arch, ver, commit string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ldflags := "-s -w"
	if ver != "" {
		const pkg = "github.com/weftmesh/weft/internal/version"
		ldflags += " -X " + pkg + ".Version=" + ver + " -X " + pkg + ".Commit=" + commit
	}
	// grpcnotrace as the Makefile builds weft-proxy: gRPC without
	// golang.org/x/net/trace keeps the linker's dead-method elimination on
	// (weft-proxy 26 -> 16 MB); none of the binaries serves gRPC traces.
	args := []string{"build", "-trimpath", "-tags=grpcnotrace", "-ldflags=" + ldflags, "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, b.pkg)
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for linux/%s: %v\n%s", arch, err, strings.TrimSpace(string(out)))
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(dir, b.name)); err != nil {
			return fmt.Errorf("go build for linux/%s: %s not written: %w", arch, b.name, err)
		}
	}
	return nil
}

// platform is the OCI platform of a GOARCH (Go's names are OCI's).
func platform(arch string) (Platform, error) {
	switch arch {
	case "amd64", "386", "ppc64le", "s390x", "riscv64":
		return Platform{OS: "linux", Architecture: arch}, nil
	case "arm64":
		return Platform{OS: "linux", Architecture: arch, Variant: "v8"}, nil
	case "arm":
		return Platform{OS: "linux", Architecture: arch, Variant: "v7"}, nil
	}
	return Platform{}, fmt.Errorf("unsupported architecture %q (want a GOARCH such as amd64 or arm64)", arch)
}

// buildImage writes one image's tarball (all arches) unless the one in
// outDir already holds the same index. Besides Tag, the image is also
// named with the binaries' version (when it is a valid tag), the tag
// `weft install` defaults to.
func buildImage(ctx context.Context, s spec, arches []string, bins map[string]string, outDir, cache, debs, ver string) (Image, error) {
	ref := Registry + "/" + s.name + ":" + Tag
	a := newArchive()
	var manifests []Descriptor
	for _, arch := range arches {
		p, _ := platform(arch)
		layers, err := s.layers(input{ctx: ctx, binDir: bins[arch], arch: arch, debs: debs})
		if err != nil {
			return Image{}, err
		}
		m := Manifest{SchemaVersion: 2, MediaType: mediaManifest}
		cfg := Config{Created: epoch.Format("2006-01-02T15:04:05Z"), Architecture: p.Architecture, OS: p.OS, Variant: p.Variant,
			Config: s.run, RootFS: RootFS{Type: "layers"}}
		for _, l := range layers {
			b, diffID, err := layerBlob(l.layer, filepath.Join(cache, "blobs"))
			if err != nil {
				return Image{}, err
			}
			a.layers[b.Digest] = b.Path
			m.Layers = append(m.Layers, b.descriptor())
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
			cfg.History = append(cfg.History, HistoryRow{Created: cfg.Created, CreatedBy: "weft images: " + l.what})
		}
		if m.Config, err = a.addJSON(mediaConfig, cfg); err != nil {
			return Image{}, err
		}
		d, err := a.addJSON(mediaManifest, m)
		if err != nil {
			return Image{}, err
		}
		d.Platform = &p
		manifests = append(manifests, d)
	}
	top := manifests[0]
	if len(manifests) > 1 {
		var err error
		if top, err = a.addJSON(mediaIndex, Index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: manifests}); err != nil {
			return Image{}, err
		}
	}
	named := func(tag string) Descriptor {
		d := top
		d.Annotations = map[string]string{annotationImageName: Registry + "/" + s.name + ":" + tag, annotationRefName: tag}
		return d
	}
	entries := []Descriptor{named(Tag)}
	if ver != Tag && version.ValidTag(ver) {
		entries = append(entries, named(ver))
	}
	idx, err := json.Marshal(Index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: entries})
	if err != nil {
		return Image{}, err
	}
	a.index = idx
	path := filepath.Join(outDir, s.name+".tar")
	keyPath := filepath.Join(cache, s.name+".index.json")
	if old, err := os.ReadFile(keyPath); err == nil && string(old) == string(idx) {
		if _, err := os.Stat(path); err == nil {
			return Image{Ref: ref, Path: path}, nil
		}
	}
	if err := a.writeFile(path); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(keyPath, idx, 0o644); err != nil {
		return Image{}, err
	}
	return Image{Ref: ref, Path: path}, nil
}
