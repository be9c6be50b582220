package kit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binaries are the weft commands the suites run.
var Binaries = []string{"weft", "weft-proxy"}

// Build compiles ./cmd/<name> into dir for each name (Binaries when none
// are named). Each binary is written beside its final name and renamed,
// so processes sharing dir never run a half-written file.
func Build(dir string, names ...string) error {
	if len(names) == 0 {
		names = Binaries
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, b := range names {
		final := filepath.Join(dir, b)
		tmp := fmt.Sprintf("%s.%d", final, os.Getpid())
		cmd := GoBuild(tmp, "./cmd/"+b)
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("go build ./cmd/%s: %v\n%s", b, err, out)
		}
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
	}
	return nil
}

// GoBuild is the go build command for main package pkg as the Makefile
// builds it: weft-proxy static and with gRPC's grpcnotrace tag (without
// them its binary is 10 MB and its RSS 6.5 MiB larger: a footprint test
// would measure another proxy).
func GoBuild(out, pkg string, flags ...string) *exec.Cmd {
	args := append([]string{"build", "-trimpath", "-tags=grpcnotrace"}, flags...)
	cmd := exec.Command("go", append(args, "-o", out, pkg)...)
	if strings.HasSuffix(pkg, "/weft-proxy") {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	return cmd
}

// MustBuildTemp is for a TestMain: it builds the binaries into a new
// temporary directory named after prefix and returns it (the caller
// removes it), or exits the test binary with the build's output.
func MustBuildTemp(prefix string, names ...string) string {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	if err := Build(dir, names...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	return dir
}

var (
	sharedMu    sync.Mutex
	sharedBuilt = map[string]error{}
)

// SharedBinary returns the path of ./cmd/<name> built once per test
// process into a per-user directory that test processes share (for tests
// without a TestMain of their own).
func SharedBinary(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("weft-e2e-bin-%d", os.Getuid()))
	sharedMu.Lock()
	err, done := sharedBuilt[name]
	if !done {
		err = Build(dir, name)
		sharedBuilt[name] = err
	}
	sharedMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}
