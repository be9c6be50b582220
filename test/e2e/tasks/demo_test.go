package tasks

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs `weft demo` as a user would: fetch /productpage through the
// ingress, change routing with `weft apply` (no flags: the demo's defaults),
// then interrupt it and check no process is left behind.
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
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
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
	go io.Copy(io.Discard, stdout)
	t.Logf("demo output:\n%s", out.String())

	page := "http://127.0.0.1:8080/productpage"
	eventually(t, 20*time.Second, "productpage through the demo ingress", func() error {
		r := get(t, ingressClient, page, nil)
		if r.status != 200 || !strings.Contains(r.body, "Book Details") || !strings.Contains(r.body, "Book Reviews") {
			return fmt.Errorf("status %d: %.200s", r.status, r.body)
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
	eventually(t, 10*time.Second, "weft apply changes routing", func() error {
		for i := 0; i < 10; i++ {
			if v := reviewsVersion(get(t, ingressClient, page, nil).body); v != "v3" {
				return fmt.Errorf("reviews %q", v)
			}
		}
		return nil
	})

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
	case <-time.After(30 * time.Second):
		t.Fatal("weft demo did not stop within 30s of SIGINT")
	}
	// No child may survive: look for processes whose parent chain led to the demo.
	eventually(t, 10*time.Second, "no demo process left", func() error {
		return noProcessWith(fmt.Sprintf("--xds 127.0.0.1:15010"), "127.0.0.1:15014")
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
