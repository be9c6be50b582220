package images

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// iptablesFiles are the iptables binaries, their extension modules and
// shared libraries, copied from this machine (Debian's iptables package)
// into the proxy image, at the paths they have here, so the injected init
// container's `weft-proxy iptables` finds a working `iptables` on PATH.
// They are dynamically linked, so they can only come from a machine of the
// image's architecture: for another architecture the proxy image has none
// and says so in its history (capture then needs a node-side fallback).
func iptablesFiles(arch string) ([]file, error) {
	if !hostArch(arch) {
		return nil, nil
	}
	bin, err := exec.LookPath("iptables")
	if err != nil {
		return nil, fmt.Errorf("the proxy image needs iptables from this machine (apt-get install iptables): %w", err)
	}
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return nil, err
	}
	var files []file
	add := func(name, src string) {
		files = append(files, file{Name: name, Mode: 0o755, Src: src})
	}
	add(real, real)
	dir := filepath.Dir(bin)
	multi := filepath.Base(real)
	for _, n := range []string{"iptables", "iptables-restore", "iptables-save", "ip6tables", "ip6tables-restore", "ip6tables-save"} {
		if filepath.Join(dir, n) != real {
			files = append(files, file{Name: filepath.Join(dir, n), Link: multi})
		}
	}
	objects := []string{real}
	mods, _ := filepath.Glob("/usr/lib/*-linux-gnu*/xtables/*.so")
	for _, m := range mods {
		add(m, m)
		objects = append(objects, m)
	}
	libs, err := sharedLibs(objects)
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		src, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, err
		}
		add(l, src)
	}
	for _, etc := range []string{"/etc/protocols", "/etc/ethertypes"} {
		if _, err := os.Stat(etc); err == nil {
			files = append(files, file{Name: etc, Mode: 0o644, Src: etc})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// sharedLibs lists, with ldd, the shared objects (and the dynamic loader)
// that objects load, each path once.
func sharedLibs(objects []string) ([]string, error) {
	seen := map[string]bool{}
	for _, o := range objects {
		out, err := exec.Command("ldd", o).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", o, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			var p string
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				p = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				p = f[0] // the loader: /lib64/ld-linux-x86-64.so.2 (0x…)
			}
			if p != "" {
				seen[p] = true
			}
		}
	}
	libs := make([]string, 0, len(seen))
	for p := range seen {
		libs = append(libs, p)
	}
	sort.Strings(libs)
	return libs, nil
}
