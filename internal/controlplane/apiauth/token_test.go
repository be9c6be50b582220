package apiauth

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		listen string
		want   []string
	}{
		{"127.0.0.1:15014", []string{"127.0.0.1_15014.token"}},
		{"0.0.0.0:15014", []string{"0.0.0.0_15014.token", "127.0.0.1_15014.token", "__1_15014.token", "localhost_15014.token"}},
		{"[::]:1", []string{"___1.token", "127.0.0.1_1.token", "__1_1.token", "localhost_1.token"}},
		{"localhost:9", []string{"localhost_9.token", "127.0.0.1_9.token", "__1_9.token"}},
		{"../../etc:9", []string{".._.._etc_9.token"}},
		{"nonsense", nil},
	} {
		if got := Keys(tc.listen); !slices.Equal(got, tc.want) {
			t.Errorf("Keys(%q) = %q, want %q", tc.listen, got, tc.want)
		}
	}
}

func TestPublishDiscover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cps")
	tok := New()
	files, err := Publish(dir, "0.0.0.0:15014", tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:15014", "localhost:15014", "[::1]:15014"} {
		if got, err := Discover(dir, addr); err != nil || got != tok {
			t.Errorf("Discover(%s) = %q, %v", addr, got, err)
		}
	}
	if got, err := Discover(dir, "127.0.0.1:15015"); err != nil || got != "" {
		t.Errorf("another port: %q, %v", got, err)
	}
	// A newer control plane on the same address replaced the file: the
	// old one's Unpublish leaves it alone.
	newer := New()
	if _, err := Publish(dir, "127.0.0.1:15014", newer); err != nil {
		t.Fatal(err)
	}
	Unpublish(files, tok)
	if got, _ := Discover(dir, "127.0.0.1:15014"); got != newer {
		t.Errorf("Unpublish removed a newer control plane's token")
	}
	if got, _ := Discover(dir, "localhost:15014"); got != newer {
		t.Errorf("localhost falls back to 127.0.0.1: %q", got)
	}
	if got, _ := Discover(filepath.Join(t.TempDir(), "none"), "127.0.0.1:15014"); got != "" {
		t.Errorf("no dir: %q", got)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir)
	if err != nil || len(a) != 64 {
		t.Fatalf("%q %v", a, err)
	}
	b, err := LoadOrCreate(dir)
	if err != nil || b != a {
		t.Fatalf("second start: %q %v, want the kept token", b, err)
	}
	// An unusable file (short, or readable by others) is replaced.
	p := filepath.Join(dir, StateFile)
	os.WriteFile(p, []byte("short\n"), 0o600)
	if c, _ := LoadOrCreate(dir); c == "short" || len(c) != 64 {
		t.Fatalf("short token kept: %q", c)
	}
	os.Chmod(p, 0o644)
	if d, _ := LoadOrCreate(dir); d == b {
		t.Fatal("a world-readable token was kept")
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if !Equal(a, a) || Equal(a, b[:63]+"x") || Equal("", "") || Equal(a, "") {
		t.Fatal("Equal")
	}
}

// A control plane killed without unpublishing leaves its file behind; a
// later one on the same port has another token. The client must not send
// the dead one's token (CI once failed a read with "invalid admin token"
// that way), and the stale file is cleaned up.
func TestDiscoverIgnoresDeadPublisher(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cps")
	if _, err := Publish(dir, "127.0.0.1:15014", New()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "127.0.0.1_15014.token")
	// A process that has exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	stale := New()
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(stale + "\n" + fmt.Sprintf("pid %d start 1", dead) + "\n")
	if got, err := Discover(dir, "127.0.0.1:15014"); err != nil || got != "" {
		t.Errorf("dead publisher: Discover = %q, %v; want none", got, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("the stale file is still there: %v", err)
	}
	// Our own pid with another start time: the pid was reused.
	write(stale + "\n" + fmt.Sprintf("pid %d start 1", os.Getpid()) + "\n")
	if got, _ := Discover(dir, "127.0.0.1:15014"); got != "" {
		t.Errorf("reused pid: Discover = %q, want none", got)
	}
	// A live publisher, and a file from an older Weft without an owner line.
	live := New()
	if _, err := Publish(dir, "127.0.0.1:15014", live); err != nil {
		t.Fatal(err)
	}
	if got, err := Discover(dir, "127.0.0.1:15014"); err != nil || got != live {
		t.Errorf("live publisher: Discover = %q, %v", got, err)
	}
	write(stale + "\n")
	if got, _ := Discover(dir, "127.0.0.1:15014"); got != stale {
		t.Errorf("owner-less file: Discover = %q, want its token", got)
	}
}
