// Package kit is the harness the end-to-end suites under test/e2e share:
// building the weft binaries, running them as real processes whose logs
// are kept for a failing test, the weft CLI against a running control
// plane, the demo mesh a suite starts once, HTTP requests through a
// workload's sidecar, and the small backends the suites put behind the
// proxies.
//
// Each suite keeps its own loopback block and lock (see the suite's
// TestMain); the kit holds no addresses of its own.
package kit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// RepoRoot is the module's root directory (this file is test/e2e/kit/kit.go).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Task reads a task's YAML from examples/tasks.
func Task(name string) string {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "examples", "tasks", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ExitIfShort ends a suite's TestMain (exit code 0, saying why) in -short
// mode. Call it after flag.Parse.
func ExitIfShort(suite string) {
	if testing.Short() {
		fmt.Printf("skipping %s in -short mode\n", suite)
		os.Exit(0)
	}
}

// Lock takes the exclusive file lock /tmp/<name>.lock, waiting for it,
// and holds it until the process exits: suites on fixed addresses take
// turns with concurrent runs of themselves (two checkouts, a helper's
// ./...).
func Lock(name string) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		panic(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		panic(err)
	}
	locks = append(locks, f) // kept open: closing would release it
}

var locks []*os.File

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a
// process that cannot report the port it bound (prefer port 0 and a log
// line where the process can).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
