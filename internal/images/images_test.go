package images

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The module root, two levels up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

var (
	buildOnce sync.Once
	built     []Image
	builtDir  string
	buildErr  error
)

// hostImages builds the images for the host architecture once per test
// binary into a directory shared by the tests (compiling weft takes a while
// on a loaded machine).
func hostImages(t *testing.T) ([]Image, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: building the images compiles every binary")
	}
	needDebTools(t)
	buildOnce.Do(func() {
		builtDir, buildErr = os.MkdirTemp("", "weft-images-test-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		built, buildErr = Build(ctx, moduleRoot(t), builtDir)
	})
	if buildErr != nil {
		t.Fatalf("Build: %v", buildErr)
	}
	return built, builtDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func find(t *testing.T, imgs []Image, ref string) Image {
	t.Helper()
	for _, im := range imgs {
		if im.Ref == ref {
			return im
		}
	}
	t.Fatalf("no image %s in %v", ref, imgs)
	return Image{}
}

func TestBuildContract(t *testing.T) {
	imgs, dir := hostImages(t)
	var refs []string
	for _, im := range imgs {
		refs = append(refs, im.Ref)
		if filepath.Dir(im.Path) != dir || !strings.HasSuffix(im.Path, ".tar") {
			t.Errorf("%s: path %s, want a .tar in %s", im.Ref, im.Path, dir)
		}
	}
	want := []string{"weft.local/weft:dev", "weft.local/weft-proxy:dev", "weft.local/pause:dev",
		"weft.local/examples-bookinfo-details-v1:dev", "weft.local/examples-bookinfo-ratings-v1:dev",
		"weft.local/examples-bookinfo-reviews-v1:dev", "weft.local/examples-bookinfo-reviews-v2:dev",
		"weft.local/examples-bookinfo-reviews-v3:dev", "weft.local/examples-bookinfo-productpage-v1:dev",
		"weft.local/httpbin:dev", "weft.local/curl:dev"}
	if !slices.Equal(refs, want) {
		t.Errorf("Build made\n%v\nwant (the contract)\n%v", refs, want)
	}
	if !slices.Equal(Refs(), want) {
		t.Errorf("Refs() = %v", Refs())
	}
}

// Each image read back: one manifest for the host platform, the
// entrypoint, user and files it must have, every digest checked by Read.
func TestImagesReadBack(t *testing.T) {
	imgs, _ := hostImages(t)
	cases := []struct {
		ref, user string
		entry     []string
		files     []string // regular files or symlinks in the image
		mode      map[string]int64
	}{
		{ref: "weft.local/pause:dev", user: "65535:65535", entry: []string{"/pause"}, files: []string{"pause"}},
		{ref: "weft.local/weft:dev", user: "1337:1337", entry: []string{"/usr/local/bin/weft"},
			files: []string{"usr/local/bin/weft", "etc/passwd", "etc/group", "etc/nsswitch.conf"},
			mode:  map[string]int64{"tmp": 0o1777, "usr/local/bin/weft": 0o755}},
		{ref: "weft.local/weft-proxy:dev", user: "1337:1337", entry: []string{"/usr/local/bin/weft-proxy"},
			files: []string{"usr/local/bin/weft-proxy", "etc/passwd"}},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			im := find(t, imgs, tc.ref)
			a, err := Read(im.Path)
			if err != nil {
				t.Fatal(err)
			}
			// Named Tag, and also by the version `weft install` defaults to.
			wantNames := []string{tc.ref}
			if ver, _ := stamp(context.Background(), moduleRoot(t)); ver != "" && ver != Tag {
				wantNames = append(wantNames, strings.TrimSuffix(tc.ref, ":"+Tag)+":"+ver)
			}
			var names []string
			for _, d := range a.Index.Manifests {
				names = append(names, d.Annotations[annotationImageName])
				if d.Digest != a.Index.Manifests[0].Digest {
					t.Errorf("index.json entries point at different manifests")
				}
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("index.json names %v, want %v", names, wantNames)
			}
			if len(a.Images) != 1 {
				t.Fatalf("%d platform images, want 1", len(a.Images))
			}
			ai := a.Images[0]
			if ai.Platform.OS != "linux" || ai.Platform.Architecture != runtime.GOARCH {
				t.Errorf("platform %+v, want linux/%s", ai.Platform, runtime.GOARCH)
			}
			if !slices.Equal(ai.Config.Config.Entrypoint, tc.entry) {
				t.Errorf("entrypoint %q, want %q", ai.Config.Config.Entrypoint, tc.entry)
			}
			if ai.Config.Config.User != tc.user {
				t.Errorf("user %q, want %q", ai.Config.Config.User, tc.user)
			}
			for _, f := range tc.files {
				h, ok := ai.Files[f]
				if !ok {
					t.Errorf("no %s in the image", f)
					continue
				}
				if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeSymlink {
					t.Errorf("%s: type %c", f, h.Typeflag)
				}
			}
			for f, m := range tc.mode {
				if h, ok := ai.Files[f]; !ok || h.Mode != m {
					t.Errorf("%s: mode %o, want %o", f, h.Mode, m)
				}
			}
			// The entrypoint's binary is a static ELF for the platform.
			if h := ai.Files[strings.TrimPrefix(tc.entry[0], "/")]; h == nil || h.Size < 1<<20 {
				t.Errorf("entrypoint binary missing or tiny: %+v", h)
			}
			if tc.user == "1337:1337" && !strings.Contains(string(ai.Content["etc/passwd"]), "istio-proxy:x:1337:1337:") {
				t.Errorf("/etc/passwd lacks istio-proxy: %q", ai.Content["etc/passwd"])
			}
		})
	}
}

// The proxy image carries a working iptables: the injected init
// container's own command (`weft-proxy iptables`, as root) run from the
// unpacked image in a chroot, in a fresh network namespace, installs the
// capture rules (host architecture only).
func TestProxyImageIptables(t *testing.T) {
	imgs, _ := hostImages(t)
	path := find(t, imgs, "weft.local/weft-proxy:dev").Path
	a, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	files := a.Images[0].Files
	h, ok := files["usr/sbin/iptables"]
	if !ok {
		t.Fatal("no usr/sbin/iptables in the proxy image")
	}
	if h.Typeflag == tar.TypeSymlink {
		if _, ok := files["usr/sbin/"+h.Linkname]; !ok {
			t.Fatalf("usr/sbin/iptables -> %s, which the image lacks", h.Linkname)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("running iptables from the image needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare (util-linux)")
	}
	rootfs := unpack(t, path, a.Images[0])
	// A container runtime mounts /dev; the chroot gets the host's, in a
	// private mount namespace.
	script := "mkdir -p " + rootfs + "/dev && mount --bind /dev " + rootfs + "/dev && chroot " + rootfs + " /usr/local/bin/weft-proxy iptables && chroot " + rootfs + " iptables -t nat -S"
	out, err := exec.Command("unshare", "-m", "-n", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("weft-proxy iptables in the image: %v\n%s", err, out)
	}
	for _, want := range []string{"-N WEFT_OUTPUT", "--uid-owner 1337", "--to-ports 15001", "--to-ports 15006"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rules lack %q:\n%s", want, out)
		}
	}
}

// unpack extracts im's layers, bottom first, into a new directory.
func unpack(t *testing.T, path string, im ArchImage) string {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "layout")
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{blobs, rootfs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("tar", "-xf", path, "-C", blobs).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	for _, l := range im.Manifest.Layers {
		blob := filepath.Join(blobs, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:"))
		if out, err := exec.Command("tar", "-xzf", blob, "-C", rootfs).CombinedOutput(); err != nil {
			t.Fatalf("tar %s: %v\n%s", l.Digest, err, out)
		}
	}
	return rootfs
}

// A second Build with nothing changed writes nothing: the tarballs keep
// their modification times and contents.
func TestBuildReusesOutputs(t *testing.T) {
	imgs, dir := hostImages(t)
	before := map[string]time.Time{}
	for _, im := range imgs {
		st, err := os.Stat(im.Path)
		if err != nil {
			t.Fatal(err)
		}
		before[im.Path] = st.ModTime()
	}
	again, err := Build(context.Background(), moduleRoot(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(imgs) {
		t.Fatalf("second build: %d images, first %d", len(again), len(imgs))
	}
	for _, im := range again {
		st, err := os.Stat(im.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(before[im.Path]) {
			t.Errorf("%s rewritten although nothing changed", im.Path)
		}
	}
}

func TestBuildRejectsBadArch(t *testing.T) {
	if _, err := Build(context.Background(), ".", t.TempDir(), "vax"); err == nil || !strings.Contains(err.Error(), "vax") {
		t.Fatalf("Build(vax) = %v, want an error naming the architecture", err)
	}
	if _, err := Build(context.Background(), ".", t.TempDir(), "amd64", "amd64"); err == nil {
		t.Fatal("Build(amd64, amd64) did not fail")
	}
}
