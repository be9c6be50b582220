package kit

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// Command describes a process to run for a test.
type Command struct {
	Name string   // for logs; the binary's base name when empty
	Path string   // the binary
	Args []string // its arguments
	Env  []string // added to the test's environment
	// OnLine sees each line the process writes (stdout and stderr), in
	// order, from one goroutine.
	OnLine func(line string)
	// Graceful: the test's cleanup sends SIGTERM and allows 5 s before
	// SIGKILL (default: SIGKILL at once).
	Graceful bool
}

// Proc is a running Command. It dies with the test (cleanup) and with the
// test binary (Pdeathsig); a failing test logs the tail of its output.
type Proc struct {
	Name string
	Cmd  *exec.Cmd

	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

// logTail is how much of a process's output a failing test prints.
const logTail = 16 << 10

// Start starts c and registers its cleanup with t.
func (c Command) Start(t testing.TB) *Proc {
	t.Helper()
	name := c.Name
	if name == "" {
		name = c.Path[strings.LastIndexByte(c.Path, '/')+1:]
	}
	p := &Proc{Name: name, Cmd: exec.Command(c.Path, c.Args...), done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), c.Env...)
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = w, w
	if err := p.Cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	w.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if c.OnLine != nil {
				c.OnLine(line)
			}
		}
	}()
	go func() {
		p.Cmd.Wait()
		// A child the process left behind may hold the pipe open: wait
		// for the rest of the output only briefly.
		select {
		case <-read:
		case <-time.After(2 * time.Second):
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		if c.Graceful {
			p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() || os.Getenv("WEFT_E2E_LOGS") != "" {
			out := p.Log()
			if len(out) > logTail {
				out = "…" + out[len(out)-logTail:]
			}
			t.Logf("--- %s log ---\n%s", name, out)
		}
	})
	return p
}

// Log returns what the process wrote so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Done is closed when the process has exited and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig and fails t unless the process exits within the time.
func (p *Proc) Stop(t testing.TB, sig syscall.Signal, within time.Duration) {
	t.Helper()
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v of %v", p.Name, within, sig)
	}
}

// WaitLine waits for the first output line containing substr and returns
// it; it fails t if the process exits first or within passes.
func (p *Proc) WaitLine(t testing.TB, substr string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		exited := p.Exited() // before reading: then the log is complete
		for _, l := range strings.Split(p.Log(), "\n") {
			if strings.Contains(l, substr) {
				return l
			}
		}
		if exited {
			t.Fatalf("%s exited before logging %q:\n%s", p.Name, substr, p.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v:\n%s", p.Name, substr, within, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogField is the value of key=value in a logfmt (slog text) line.
func LogField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// WaitReady polls a proxy's readiness endpoint, http://healthAddr/healthz/ready,
// until it answers 200; it fails t after within, or at once if p exits.
func (p *Proc) WaitReady(t testing.TB, healthAddr string, within time.Duration) {
	t.Helper()
	meshtest.Eventually(t, p.Name+" ready", within, func() error {
		if p.Exited() {
			t.Fatalf("%s exited before it was ready: %v\n%s", p.Name, p.Cmd.ProcessState, p.Log())
		}
		resp, err := http.Get("http://" + healthAddr + "/healthz/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}
