package kubetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Stop tears the node down completely, so the next run (or CI's next
// step) finds the machine as it was: pods deleted through the kubelet
// (which runs CNI DEL and removes their network namespaces), every
// process stopped, kube-proxy's and CNI's iptables chains removed, the
// bridge deleted, every mount under the node's directory unmounted and the
// directory removed.
func (n *Node) Stop() {
	if n.Env != nil && n.running("kubelet") {
		// Controllers first, so nothing recreates what is deleted.
		n.stopProc("kube-controller-manager", "kube-scheduler")
		n.deletePods(90 * time.Second)
	}
	n.stopProc("kubelet", "kube-proxy", "coredns", "kube-controller-manager", "kube-scheduler", "containerd")
	if n.Env != nil {
		n.Env.Stop()
	}
	// The node's own directory is one of the "stale" ones now.
	cleanupStale(n.bin, n.logf)
	n.removeNetns()
	if n.lockFd != nil {
		n.lockFd.Close()
		n.lockFd = nil
	}
}

func (n *Node) running(name string) bool {
	for _, p := range n.procs {
		if p.name == name {
			select {
			case <-p.done:
				return false
			default:
				return true
			}
		}
	}
	return false
}

func (n *Node) stopProc(names ...string) {
	for _, name := range names {
		for _, p := range n.procs {
			if p.name != name {
				continue
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
	}
}

// deletePods deletes every pod and waits until the kubelet has confirmed
// each one gone (it removes the API object only after the containers are
// stopped and the sandbox's network is torn down).
func (n *Node) deletePods(limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	grace := int64(1)
	pods, err := n.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		n.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	}
	for ctx.Err() == nil {
		pods, err := n.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	n.logf("kubelet did not remove every pod in %v; forcing the cleanup", limit)
}

// removeNetns removes network namespaces containerd created for pods
// that were not torn down (those not there when the node started).
func (n *Node) removeNetns() {
	for name := range listNetns() {
		if !n.netns[name] {
			removeNetns(name)
		}
	}
}

func listNetns() map[string]bool {
	out := map[string]bool{}
	es, _ := os.ReadDir("/run/netns")
	for _, e := range es {
		if strings.HasPrefix(e.Name(), "cni-") {
			out[e.Name()] = true
		}
	}
	return out
}

func removeNetns(name string) {
	p := filepath.Join("/run/netns", name)
	syscall.Unmount(p, syscall.MNT_DETACH)
	os.Remove(p)
}

// cleanupStale removes what a node leaves on the machine outside its
// directory, and the directories of node runs that were killed: processes
// started under them (containerd shims), everything in the kubepods
// cgroups, the bridge, pod network namespaces, the KUBE-* and CNI-*
// iptables chains, and their mounts. Only the holder of NodeLock calls it.
func cleanupStale(bin string, logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "weft-kubenode-*"))
	killUnder(dirs, logf)
	killCgroup("kubepods", logf)
	exec.Command("ip", "link", "del", Bridge).Run()
	// Pod network namespaces outlive a killed containerd; only the node's
	// containerd (CRI) names them cni-*.
	if len(dirs) > 0 {
		for name := range listNetns() {
			removeNetns(name)
		}
	}
	if p := filepath.Join(bin, "kube-proxy"); fileExists(p) {
		exec.Command(p, "--cleanup").Run()
	}
	removeChains(logf)
	for _, d := range dirs {
		unmountUnder(d)
		if err := os.RemoveAll(d); err != nil {
			logf("removing stale %s: %v", d, err)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// killUnder kills processes whose command line names one of the node
// directories (containerd's shims carry its socket path), and shims of a
// node whose directory is already gone.
func killUnder(dirs []string, logf func(string, ...any)) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	self := os.Getpid()
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		b, err := os.ReadFile(p)
		if err != nil || pid == self {
			continue
		}
		cmd := string(b)
		stale := strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, filepath.Join(os.TempDir(), "weft-kubenode-"))
		for _, d := range dirs {
			stale = stale || strings.Contains(cmd, d+"/")
		}
		if stale {
			logf("killing stale %d: %s", pid, strings.ReplaceAll(cmd, "\x00", " "))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// killCgroup kills every process in the named cgroup subtree of every
// v1 hierarchy (and the v2 one) and removes the cgroups, deepest first.
func killCgroup(name string, logf func(string, ...any)) {
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	if fileExists(filepath.Join("/sys/fs/cgroup", name, "cgroup.procs")) {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", name))
	}
	for attempt := 0; attempt < 20; attempt++ {
		var dirs []string
		killed := 0
		for _, r := range roots {
			filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				dirs = append(dirs, p)
				f, err := os.Open(filepath.Join(p, "cgroup.procs"))
				if err != nil {
					return nil
				}
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					if pid, err := strconv.Atoi(sc.Text()); err == nil && pid != os.Getpid() {
						syscall.Kill(pid, syscall.SIGKILL)
						killed++
					}
				}
				f.Close()
				return nil
			})
		}
		if killed > 0 {
			logf("killed %d processes left in the %s cgroups", killed, name)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// Deepest first: a cgroup is removed only when empty of children.
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		left := 0
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !os.IsNotExist(err) {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("could not remove every %s cgroup", name)
}

// removeChains deletes the KUBE-* and CNI-* chains the kubelet, kube-proxy
// and the CNI plugins leave in the iptables tables (kube-proxy --cleanup
// removes its own, not the kubelet's canaries or portmap's).
func removeChains(logf func(string, ...any)) {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(ipt); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(ipt, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				ours := func(c string) bool { return strings.HasPrefix(c, "KUBE-") || strings.HasPrefix(c, "CNI-") }
				switch {
				case f[0] == "-N" && ours(f[1]):
					chains = append(chains, f[1])
				case f[0] == "-A" && !ours(f[1]):
					// A jump from a built-in chain into ours.
					for i := range len(f) - 1 {
						if f[i] == "-j" && ours(f[i+1]) {
							args := append([]string{"-w", "-t", table, "-D"}, unquote(f[1:])...)
							if err := exec.Command(ipt, args...).Run(); err != nil {
								logf("%s %v: %v", ipt, args, err)
							}
						}
					}
				}
			}
			for _, c := range chains {
				exec.Command(ipt, "-w", "-t", table, "-F", c).Run()
			}
			for _, c := range chains {
				exec.Command(ipt, "-w", "-t", table, "-X", c).Run()
			}
		}
	}
}

// unquote joins the fields of an iptables -S rule back into arguments,
// honouring the double quotes it puts around comments.
func unquote(f []string) []string {
	var out []string
	for i := 0; i < len(f); i++ {
		if strings.HasPrefix(f[i], `"`) {
			s := f[i]
			for !strings.HasSuffix(s, `"`) || len(s) == 1 {
				i++
				if i >= len(f) {
					break
				}
				s += " " + f[i]
			}
			out = append(out, strings.Trim(s, `"`))
			continue
		}
		out = append(out, f[i])
	}
	return out
}

// unmountUnder unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	if dir == "" {
		return
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			fmt.Fprintf(os.Stderr, "kubetest: unmount %s: %v\n", mp, err)
		}
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lockFile takes an exclusive flock on path, waiting for another run.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}
