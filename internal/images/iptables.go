package images

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
)

// iptablesPackages are Debian's iptables and the packages its nf_tables
// variant (xtables-nft-multi), its extension modules and /etc/protocols
// come from.
var iptablesPackages = []string{"iptables", "libip4tc2", "libip6tc2", "libxtables12", "libmnl0",
	"libnetfilter-conntrack3", "libnfnetlink0", "libnftnl11", "libc6", "netbase"}

// iptablesFiles are iptables for the proxy image of arch, so the injected
// istio-init container's `weft-proxy iptables` finds a working `iptables`
// on PATH: Debian's xtables-nft-multi of that architecture (iptables,
// -save and -restore, v4 and v6, linked to it), its extension modules, the
// shared libraries they need and the dynamic loader, and /etc/protocols.
// Debian's binaries are dynamically linked, so each architecture gets its
// own packages (unpackDebs); none of the build host's files are copied.
func iptablesFiles(ctx context.Context, cache, arch string) ([]file, []string, error) {
	trip, _, err := triplet(arch)
	if err != nil {
		return nil, nil, err
	}
	t, err := unpackDebs(ctx, cache, arch, iptablesPackages...)
	if err != nil {
		return nil, nil, err
	}
	const multi = "/usr/sbin/xtables-nft-multi"
	objects := []string{multi}
	mods, _ := filepath.Glob(t.host("/usr/lib/" + trip + "/xtables/*.so"))
	if len(mods) == 0 {
		return nil, nil, fmt.Errorf("iptables %s: no extension modules under /usr/lib/%s/xtables", arch, trip)
	}
	for _, m := range mods {
		objects = append(objects, path.Join("/usr/lib", trip, "xtables", filepath.Base(m)))
	}
	files, err := t.withLibs(objects)
	if err != nil {
		return nil, nil, fmt.Errorf("iptables %s: %w", arch, err)
	}
	for _, n := range []string{"iptables", "iptables-restore", "iptables-save", "ip6tables", "ip6tables-restore", "ip6tables-save"} {
		files = append(files, file{Name: "/usr/sbin/" + n, Link: path.Base(multi)})
	}
	for _, etc := range []string{"/etc/protocols", "/etc/ethertypes"} {
		if _, err := os.Stat(t.host(etc)); err == nil {
			files = append(files, file{Name: etc, Mode: 0o644, Src: t.host(etc)})
		}
	}
	return files, t.versions, nil
}

// busyboxFiles are Debian's busybox-static for arch at /bin/busybox (one
// static binary, no libraries) with /bin/sh and the usual tools linked to
// it, so `kubectl exec deploy/curl -- sh -c '…'` works as with Istio's
// curl image.
func busyboxFiles(ctx context.Context, cache, arch string) ([]file, []string, error) {
	if _, _, err := triplet(arch); err != nil {
		return nil, nil, err
	}
	t, err := unpackDebs(ctx, cache, arch, "busybox-static")
	if err != nil {
		return nil, nil, err
	}
	files := []file{{Name: "/bin/busybox", Mode: 0o755, Src: t.host("/bin/busybox")}}
	for _, a := range busyboxApplets {
		files = append(files, file{Name: a, Link: "/bin/busybox"})
	}
	return files, t.versions, nil
}

// busyboxApplets are the tools the curl image links to busybox: a shell
// and what scripts in Istio's tasks pipe curl's output through. curl and
// sleep stay weft-sample's (the manifest runs /bin/sleep infinity).
var busyboxApplets = []string{
	"/bin/sh", "/bin/ash", "/bin/cat", "/bin/echo", "/bin/grep", "/bin/ls", "/bin/sed",
	"/usr/bin/awk", "/usr/bin/cut", "/usr/bin/env", "/usr/bin/head", "/usr/bin/printf",
	"/usr/bin/seq", "/usr/bin/sort", "/usr/bin/tail", "/usr/bin/tee", "/usr/bin/timeout",
	"/usr/bin/tr", "/usr/bin/wc", "/usr/bin/xargs", "/usr/bin/nslookup", "/usr/bin/wget",
}
