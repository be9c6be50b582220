package tasks

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestDemo runs `weft demo` as a user would: fetch /productpage through the
// ingress, change routing with `weft apply` (no flags: the demo's defaults,
// the admin token found on its own), kill -9 its control plane and an app
// (the demo restarts them, the ingress keeps serving), then interrupt it and
// check no process is left behind.
func TestDemo(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "weft"), "demo")
	cmd.Env = append(os.Environ(), "WEFT_CONTROL_PLANE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 256)
	var console syncLines // everything the demo printed
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			console.add(sc.Text())
			select {
			case lines <- sc.Text():
			default: // only start-up is read from the channel
			}
		}
		close(lines)
	}()
	var out strings.Builder
	deadline := time.After(3 * time.Minute)
	for up := false; !up; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("weft demo exited before it was up:\n%s\n%s", out.String(), stderr.String())
			}
			out.WriteString(l + "\n")
			up = strings.Contains(l, "Ctrl-C stops everything")
		case <-deadline:
			t.Fatalf("weft demo not up after 3 minutes:\n%s\n%s", out.String(), stderr.String())
		}
	}
	t.Logf("demo output:\n%s", out.String())

	page := "http://127.0.0.1:8080/productpage"
	meshtest.Eventually(t, "productpage through the demo ingress", 20*time.Second, func() error {
		r := kit.Get(t, kit.Direct, page, nil)
		if r.Status != 200 || !strings.Contains(r.Body, "Book Details") || !strings.Contains(r.Body, "Book Reviews") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	})
	env := append(os.Environ(), "WEFT_CONTROL_PLANE=")
	apply := exec.Command(filepath.Join(binDir, "weft"), "apply", "-f", "-")
	apply.Env = env
	apply.Stdin = strings.NewReader(reviewsV3)
	if b, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("weft apply against the demo: %v\n%s", err, b)
	}
	meshtest.Eventually(t, "weft apply changes routing", 10*time.Second, func() error {
		for i := 0; i < 10; i++ {
			if v := reviewsVersion(kit.Get(t, kit.Direct, page, nil).Body); v != "v3" {
				return fmt.Errorf("reviews %q", v)
			}
		}
		return nil
	})

	demoSurvivesCrashes(t, cmd.Process.Pid, &console)

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("weft demo exit: %v\n%s", err, stderr.String())
		}
		if c := console.String(); !strings.Contains(c, "Restarted while running: ") || !strings.Contains(c, "control-plane restarted 1×") {
			t.Errorf("the demo's closing summary does not name the restarts:\n%s", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("weft demo did not stop within 30s of SIGINT")
	}
	// No child may survive: look for processes whose parent chain led to the demo.
	meshtest.Eventually(t, "no demo process left", 10*time.Second, func() error {
		return noProcessWith(fmt.Sprintf("--xds 127.0.0.1:15012"), "127.0.0.1:15014")
	})
}

// noProcessWith fails if any running process's command line contains one of
// the markers.
func noProcessWith(markers ...string) error {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		for _, m := range markers {
			if strings.Contains(cl, m) {
				return fmt.Errorf("process %s still running: %s", e.Name(), cl)
			}
		}
	}
	return nil
}

// syncLines collects a process's output lines.
type syncLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLines) add(l string) {
	s.mu.Lock()
	s.b.WriteString(l + "\n")
	s.mu.Unlock()
}

func (s *syncLines) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// childWith finds the demo's child process whose command line has all the
// markers.
func childWith(t *testing.T, parent int, markers ...string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, m := range markers {
			all = all && strings.Contains(cl, m)
		}
		if all {
			return pid
		}
	}
	t.Fatalf("no child of %d with %q", parent, markers)
	return 0
}

// demoSurvivesCrashes kills the demo's control plane with SIGKILL while
// requests flow through the ingress: not one may fail while it is down
// (proxies keep their last config) nor after its restart (it restores the
// registrations it persisted), the demo must say so and restart it, and
// every proxy must reconnect. Then an app dies and comes back.
func demoSurvivesCrashes(t *testing.T, demoPID int, console *syncLines) {
	page := "http://127.0.0.1:8080/productpage"
	cp := childWith(t, demoPID, "control-plane", "--monitoring-address 127.0.0.1:15014")
	proxies := func() (int, error) {
		resp, err := http.Get("http://127.0.0.1:15014/api/v1/proxies")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var ps []json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
			return 0, err
		}
		return len(ps), nil
	}
	before, err := proxies()
	if err != nil || before < 10 {
		t.Fatalf("proxies before the crash: %d, %v", before, err)
	}
	if err := syscall.Kill(cp, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var down, downFailed, after, afterFailed int
	var firstFailure string
	deadline := time.Now().Add(90 * time.Second)
	back := false
	for streak := 0; streak < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: control plane back %v, %d/%d requests failed after the restart (first: %s), %d consecutive successes\n%s",
				back, afterFailed, after, firstFailure, streak, console.String())
		}
		r := kit.Get(t, kit.Direct, page, nil)
		ok := r.Status == 200 && strings.Contains(r.Body, "Book Reviews")
		if !back {
			back = strings.Contains(console.String(), "control-plane restarted")
			down++
			if !ok {
				downFailed++
				t.Errorf("request %d while the control plane was down failed: %d %.200s", down, r.Status, r.Body)
			}
			continue
		}
		after++
		if !ok {
			afterFailed++
			if firstFailure == "" {
				firstFailure = fmt.Sprintf("status %d, %d bytes, reviews shown %v, details shown %v", r.Status, len(r.Body),
					strings.Contains(r.Body, "Book Reviews"), strings.Contains(r.Body, "Book Details"))
			}
			streak = 0
			continue
		}
		if n, err := proxies(); err == nil && n >= before {
			streak++
		}
	}
	// The restarted control plane restores the registrations it persisted,
	// so no proxy is ever sent empty endpoints while others reconnect.
	if afterFailed > 0 {
		t.Errorf("%d of %d requests failed after the control plane's restart (first: %s)", afterFailed, after, firstFailure)
	}
	c := console.String()
	if !strings.Contains(c, "control-plane exited (signal: killed)") {
		t.Errorf("the demo did not report the crash:\n%s", c)
	}
	t.Logf("control plane killed: %d requests while it was down (%d failed), back and all %d proxies reconnected %s after the kill; %d requests after its restart, %d failed (first: %s)",
		down, downFailed, before, time.Since(killed).Round(time.Millisecond), after, afterFailed, firstFailure)
	// The restarted control plane has the same admin token: weft finds it.
	if b, err := exec.Command(filepath.Join(binDir, "weft"), "get", "vs", "reviews", "--control-plane", "127.0.0.1:15014").CombinedOutput(); err != nil || !strings.Contains(string(b), "reviews") {
		t.Errorf("weft get after the restart: %v\n%s", err, b)
	}

	// An app dies: it is restarted, the rest of the mesh keeps running.
	app := childWith(t, demoPID, "sample details", "127.0.11.")
	if err := syscall.Kill(app, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, "details restarted and serving", 30*time.Second, func() error {
		if !strings.Contains(console.String(), "details-v1 restarted") {
			return fmt.Errorf("no restart reported yet")
		}
		if r := kit.Get(t, kit.Direct, page, nil); r.Status != 200 || !strings.Contains(r.Body, "Book Details") || strings.Contains(r.Body, "Error fetching product details") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	})
}
