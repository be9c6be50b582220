package images

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// debTree is Debian packages of one architecture unpacked into a
// directory, for the images' few non-Go files (iptables in the proxy
// image, busybox in the curl image). apt-get fetches them with its own
// lists and cache under the build cache (the host's sources; nothing on
// the host changes, no foreign architecture is added) and dpkg-deb
// unpacks them. A tree is fetched once per package list and arch.
type debTree struct {
	root     string
	arch     string
	versions []string // "pkg version", for the image history
}

// unpackDebs fetches and unpacks pkgs for arch under cache (one build at
// a time per architecture: a file lock).
func unpackDebs(ctx context.Context, cache, arch string, pkgs ...string) (*debTree, error) {
	sum := sha256.Sum256([]byte(arch + "\n" + strings.Join(pkgs, "\n")))
	key := hex.EncodeToString(sum[:8])
	dir := filepath.Join(cache, arch)
	root := filepath.Join(dir, "root-"+key)
	t := &debTree{root: root, arch: arch}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(root, ".weft-debs")); err == nil {
		t.versions = strings.Split(strings.TrimSpace(string(b)), "\n")
		return t, nil
	}
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the images take iptables and busybox from Debian's %s packages: %s is missing: %w", arch, tool, err)
		}
	}
	lists, debs := filepath.Join(dir, "lists"), filepath.Join(dir, "pkgs-"+key)
	for _, d := range []string{filepath.Join(lists, "partial"), filepath.Join(dir, "apt", "archives", "partial"), debs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	apt := func(args ...string) error {
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(c, "apt-get", append([]string{"-q",
			"-o", "APT::Architecture=" + arch, "-o", "APT::Architectures::=" + arch,
			"-o", "Dir::State::Lists=" + lists, "-o", "Dir::Cache=" + filepath.Join(dir, "apt"),
			"-o", "APT::Sandbox::User=root"}, args...)...)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s (%s): %v\n%s", strings.Join(args, " "), arch, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := apt("update"); err != nil {
		return nil, err
	}
	old, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, o := range old {
		os.Remove(o)
	}
	var qualified []string
	for _, p := range pkgs {
		qualified = append(qualified, p+":"+arch)
	}
	if err := apt(append([]string{"download"}, qualified...)...); err != nil {
		return nil, err
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	if len(files) != len(pkgs) {
		return nil, fmt.Errorf("apt-get download %s: %d packages, want %d", arch, len(files), len(pkgs))
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	for _, f := range files {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", f, tmp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %v: %s", filepath.Base(f), err, out)
		}
		v, err := exec.CommandContext(ctx, "dpkg-deb", "-f", f, "Package", "Version").Output()
		if err != nil {
			return nil, fmt.Errorf("dpkg-deb -f %s: %w", filepath.Base(f), err)
		}
		t.versions = append(t.versions, strings.Join(strings.Fields(strings.NewReplacer("Package:", "", "Version:", "").Replace(string(v))), " "))
	}
	sort.Strings(t.versions)
	if err := os.WriteFile(filepath.Join(tmp, ".weft-debs"), []byte(strings.Join(t.versions, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return nil, err
	}
	return t, nil
}

// host is the host path of an image path in the tree.
func (t *debTree) host(p string) string { return filepath.Join(t.root, filepath.FromSlash(p)) }

// resolve follows symlinks of p inside the tree (absolute targets are the
// tree's, not the host's) and returns the image path of the file.
func (t *debTree) resolve(p string) (string, error) {
	for range 16 {
		fi, err := os.Lstat(t.host(p))
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return p, nil
		}
		target, err := os.Readlink(t.host(p))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

// libDirs are where the dynamic loader of a Debian arch looks.
func libDirs(triplet string) []string {
	return []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"}
}

// triplet is Debian's multiarch name of a GOARCH.
func triplet(arch string) (string, elf.Machine, error) {
	switch arch {
	case "amd64":
		return "x86_64-linux-gnu", elf.EM_X86_64, nil
	case "arm64":
		return "aarch64-linux-gnu", elf.EM_AARCH64, nil
	}
	return "", 0, fmt.Errorf("no Debian packages wired for %s", arch)
}

// withLibs returns files (image paths of ELF objects in the tree) with
// every shared library they need, transitively, and their dynamic loader,
// each as a regular file at the path the loader asks for. It reads the
// ELF headers (no ldd), so it works for any architecture, and fails
// naming a library the tree lacks or an object of another machine.
func (t *debTree) withLibs(objects []string) ([]file, error) {
	trip, machine, err := triplet(t.arch)
	if err != nil {
		return nil, err
	}
	var out []file
	seen := map[string]bool{}
	queue := append([]string(nil), objects...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		real, err := t.resolve(p)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", p, t.arch, err)
		}
		out = append(out, file{Name: p, Mode: 0o755, Src: t.host(real)})
		f, err := elf.Open(t.host(real))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if f.Machine != machine {
			f.Close()
			return nil, fmt.Errorf("%s is for %v, not %s", p, f.Machine, t.arch)
		}
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: interpreter: %w", p, err)
			}
			queue = append(queue, strings.TrimRight(string(b), "\x00"))
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, lib := range needed {
			found := ""
			for _, d := range libDirs(trip) {
				if _, err := os.Stat(t.host(path.Join(d, lib))); err == nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("%s needs %s, which none of the %s packages has", p, lib, t.arch)
			}
			queue = append(queue, found)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
