package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Harness for control-plane end-to-end tests: build bin/weft once per test
// process and run `weft control-plane` as a real process.

var (
	cpBuildOnce sync.Once
	cpBinPath   string
	cpBuildErr  error
)

// cpRepoRoot is the module root (this file lives in test/e2e).
func cpRepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// cpWeftBinary builds ./cmd/weft into a temp directory, once.
func cpWeftBinary(t *testing.T) string {
	t.Helper()
	cpBuildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("weft-e2e-cp-%d", os.Getuid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cpBuildErr = err
			return
		}
		// Build beside, then rename: test processes running at the same
		// time never see a half-written binary.
		cpBinPath = filepath.Join(dir, "weft")
		tmp := fmt.Sprintf("%s.%d", cpBinPath, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/weft")
		cmd.Dir = cpRepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			cpBuildErr = fmt.Errorf("go build ./cmd/weft: %v\n%s", err, out)
			return
		}
		cpBuildErr = os.Rename(tmp, cpBinPath)
	})
	if cpBuildErr != nil {
		t.Fatal(cpBuildErr)
	}
	return cpBinPath
}

// cpProc is a running `weft control-plane`.
type cpProc struct {
	XDS, Monitoring string
	bin             string
	cmd             *exec.Cmd
	mu              sync.Mutex
	log             bytes.Buffer
}

// Log returns what the process logged so far.
func (p *cpProc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// cpStart runs the control plane on dir with ephemeral ports; it learns
// the ports from the "control plane serving" log line.
func cpStart(t *testing.T, dir string, extra ...string) *cpProc {
	t.Helper()
	p := &cpProc{bin: cpWeftBinary(t)}
	args := append([]string{"control-plane", "--config-dir", dir, "--xds-address", "127.0.0.1:0", "--secure-address", "127.0.0.1:0", "--monitoring-address", "127.0.0.1:0"}, extra...)
	p.cmd = exec.Command(p.bin, args...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			if !signalled && strings.Contains(line, "control plane serving") {
				p.XDS, p.Monitoring = logField(line, "xds"), logField(line, "monitoring")
				signalled = true
				close(ready)
			}
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("control plane log:\n%s", p.Log())
		}
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("control plane did not start:\n%s", p.Log())
	}
	return p
}

func logField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// Weft runs the weft CLI against this control plane.
func (p *cpProc) Weft(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(p.bin, append(args, "--control-plane", p.Monitoring)...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), o.String(), e.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, o.String(), e.String()
}

// cpWriteFile replaces a config file atomically, as an editor or git would.
func cpWriteFile(t *testing.T, dir, name, data string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
