package images

import (
	"archive/tar"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debCache is the Debian packages' cache the tests share with `make
// images` and the node tests (fetched once, then offline).
func debCache(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the Debian packages may need fetching")
	}
	needDebTools(t)
	if os.Geteuid() != 0 {
		t.Skip("apt-get download runs as root here")
	}
	return filepath.Join(moduleRoot(t), ".cache", "images-debs")
}

// needDebTools skips t without the tools unpackDebs runs.
func needDebTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: the images take iptables and busybox from Debian packages", tool)
		}
	}
}

// The proxy and curl images of each architecture carry that
// architecture's iptables and busybox: built from the real specs (fake Go
// binaries, so nothing compiles), the arm64 image's xtables-nft-multi,
// every extension module and library it loads, and its loader are aarch64
// ELF files at the paths the loader asks for; busybox is static; the
// iptables and sh names link to them.
func TestImagesCarryTheirArchTools(t *testing.T) {
	cache := debCache(t)
	arches := []string{"amd64", "arm64"}
	bins := map[string]string{}
	for _, a := range arches {
		dir := t.TempDir()
		for _, b := range []string{"weft-proxy", "weft-sample"} {
			if err := os.WriteFile(filepath.Join(dir, b), []byte("binary for "+a), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bins[a] = dir
	}
	out := t.TempDir()
	blobs := filepath.Join(out, ".cache")
	if err := os.MkdirAll(filepath.Join(blobs, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	specsByName := map[string]spec{}
	for _, s := range specs() {
		specsByName[s.name] = s
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	loaders := map[string]string{"amd64": "lib64/ld-linux-x86-64.so.2", "arm64": "lib/ld-linux-aarch64.so.1"}
	for _, name := range []string{"weft-proxy", "curl"} {
		img, err := buildImage(context.Background(), specsByName[name], arches, bins, out, blobs, cache, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		a, err := Read(img.Path)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Images) != 2 {
			t.Fatalf("%s: %d platforms", name, len(a.Images))
		}
		for _, im := range a.Images {
			arch := im.Platform.Architecture
			var sizes []string
			for i, l := range im.Manifest.Layers {
				sizes = append(sizes, fmt.Sprintf("%s %d KiB", im.Config.History[i].CreatedBy, l.Size>>10))
			}
			t.Logf("%s %s, compressed layers: %s", name, arch, strings.Join(sizes, "; "))
			root := unpack(t, img.Path, im)
			elfOf := func(p string) *elf.File {
				t.Helper()
				f, err := elf.Open(filepath.Join(root, p))
				if err != nil {
					t.Fatalf("%s %s: %s: %v", name, arch, p, err)
				}
				t.Cleanup(func() { f.Close() })
				if f.Machine != machines[arch] {
					t.Errorf("%s %s: %s is %v", name, arch, p, f.Machine)
				}
				return f
			}
			link := func(p, want string) {
				t.Helper()
				h := im.Files[p]
				if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != want {
					t.Errorf("%s %s: %s = %+v, want a link to %s", name, arch, p, h, want)
				}
			}
			switch name {
			case "weft-proxy":
				elfOf(loaders[arch])
				objs := []string{"usr/sbin/xtables-nft-multi"}
				for _, m := range []string{"owner", "REDIRECT", "tcp", "multiport"} {
					objs = append(objs, "usr/lib/"+map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]+"-linux-gnu/xtables/libxt_"+m+".so")
				}
				for _, p := range objs {
					f := elfOf(p)
					libs, _ := f.ImportedLibraries()
					for _, l := range libs {
						if !hasLib(im.Files, l) {
							t.Errorf("%s %s: %s needs %s, not in the image", name, arch, p, l)
						}
					}
				}
				for _, n := range []string{"iptables", "iptables-restore", "iptables-save", "ip6tables"} {
					link("usr/sbin/"+n, "xtables-nft-multi")
				}
				if im.Files["etc/protocols"] == nil {
					t.Errorf("%s %s: no /etc/protocols (iptables -p tcp)", name, arch)
				}
				if !strings.Contains(historyOf(im), "iptables from Debian: iptables 1.") {
					t.Errorf("%s %s: history %q", name, arch, historyOf(im))
				}
			case "curl":
				if f := elfOf("bin/busybox"); len(f.Progs) > 0 {
					for _, p := range f.Progs {
						if p.Type == elf.PT_INTERP {
							t.Errorf("curl %s: busybox is dynamically linked", arch)
						}
					}
				}
				link("bin/sh", "/bin/busybox")
				link("usr/bin/curl", "/usr/local/bin/weft-sample")
				link("bin/sleep", "/usr/local/bin/weft-sample")
			}
		}
	}
}

func hasLib(files map[string]*tar.Header, soname string) bool {
	for _, d := range []string{"lib/", "usr/lib/"} {
		for _, trip := range []string{"x86_64-linux-gnu/", "aarch64-linux-gnu/", ""} {
			if files[d+trip+soname] != nil {
				return true
			}
		}
	}
	return false
}

func historyOf(im ArchImage) string {
	var b strings.Builder
	for _, h := range im.Config.History {
		b.WriteString(h.CreatedBy + "\n")
	}
	return b.String()
}
