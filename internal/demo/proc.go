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
// Once supervised, a proc that dies is started again with backoff.
type proc struct {
	name string
	log  string // log file path
	bin  string
	args []string
	env  []string

	mu       sync.Mutex
	cmd      *exec.Cmd     // the current run
	done     chan struct{} // closed when the current run ends
	err      error         // how the current run ended
	started  time.Time
	restarts int
	stopped  bool          // Stop was called: do not restart
	quit     chan struct{} // closed by stop: ends a backoff wait
	watched  bool          // a supervisor goroutine runs
	unwatch  chan struct{} // closed when the supervisor goroutine returns
}

func startProc(name, logDir string, env []string, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(logDir, name+".log"), bin: bin, args: args, env: env, quit: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.launch(); err != nil {
		return nil, err
	}
	return p, nil
}

// launch starts a run; p.mu is held.
func (p *proc) launch() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log for %s: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(f, "# %s %v\n", p.bin, p.args)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err, p.started = cmd, done, nil, time.Now()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Supervision backoff: the first restart after minBackoff, doubling to
// maxBackoff; a run that lasted stableRun resets it.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	stableRun  = 60 * time.Second
)

// supervise restarts p whenever it dies, until stop; report is told of
// every crash and restart.
func (p *proc) supervise(report func(string)) {
	p.mu.Lock()
	if p.watched || p.stopped {
		p.mu.Unlock()
		return
	}
	p.watched = true
	p.unwatch = make(chan struct{})
	p.mu.Unlock()
	go func() {
		defer close(p.unwatch)
		backoff := minBackoff
		for {
			p.mu.Lock()
			done := p.done
			p.mu.Unlock()
			<-done
			p.mu.Lock()
			if p.stopped {
				p.mu.Unlock()
				return
			}
			ran := time.Since(p.started)
			if ran >= stableRun {
				backoff = minBackoff
			}
			p.restarts++
			n, err := p.restarts, p.err
			p.mu.Unlock()
			report(fmt.Sprintf("%s exited (%v) after %s; restarting in %s (restart %d; log %s)", p.name, err, ran.Round(time.Millisecond), backoff, n, p.log))
			select {
			case <-time.After(backoff):
			case <-p.quit:
				return
			}
			backoff = min(2*backoff, maxBackoff)
			p.mu.Lock()
			if p.stopped {
				p.mu.Unlock()
				return
			}
			err = p.launch()
			pid := 0
			if err == nil {
				pid = p.cmd.Process.Pid
			}
			p.mu.Unlock()
			if err != nil {
				report(fmt.Sprintf("%s: restart failed: %v; giving up", p.name, err))
				return
			}
			report(fmt.Sprintf("%s restarted (pid %d)", p.name, pid))
		}
	}()
}

// Restarts counts how often the process was restarted.
func (p *proc) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// pid of the current run.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// exited reports whether the current run has ended.
func (p *proc) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// stop ends supervision, then sends SIGTERM to the process group and
// SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.quit)
	}
	done, pgid := p.done, p.cmd.Process.Pid
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
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
	mu     sync.Mutex
	procs  []*proc
	log    *slog.Logger
	report func(string) // crashes and restarts
}

// supervise restarts p whenever it dies from now on.
func (g *group) supervise(p *proc) { p.supervise(g.report) }

// restarts lists "name ×n" for every process that was restarted.
func (g *group) restarts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, p := range g.procs {
		if n := p.Restarts(); n > 0 {
			out = append(out, fmt.Sprintf("%s restarted %d×", p.name, n))
		}
	}
	return out
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
