package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the demo. Children run in their own process
// group and get SIGKILL if the demo dies (Pdeathsig), so nothing is orphaned.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // log file path
	done chan struct{}
	err  error
}

func startProc(name, logDir string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(f, "# %s %v\n", bin, args)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the last n bytes of the process log, for error messages.
func (p *proc) tail(n int64) string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	if st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// group stops processes in reverse start order.
type group struct {
	mu    sync.Mutex
	procs []*proc
	log   *slog.Logger
}

func (g *group) add(p *proc) {
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
}

func (g *group) stopAll(grace time.Duration) {
	g.mu.Lock()
	ps := append([]*proc(nil), g.procs...)
	g.procs = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(ps) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(grace) }(ps[i])
	}
	wg.Wait()
}

// firstExited reports a child that died, if any.
func (g *group) firstExited() *proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.procs {
		if p.exited() {
			return p
		}
	}
	return nil
}

// poll calls check until it succeeds or ctx/deadline expires; it never sleeps
// longer than the interval and reports the last error.
func poll(ctx context.Context, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-t.C:
		}
	}
}
