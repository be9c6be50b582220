package images

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The sample images run as Istio's manifests expect: the entrypoints and
// ports of Istio's Bookinfo, httpbin and curl images.
func TestSampleImageConfigs(t *testing.T) {
	imgs, _ := hostImages(t)
	cases := []struct {
		name string
		port string
		args []string // the entrypoint after the binary
	}{
		{"examples-bookinfo-details-v1", "9080/tcp", []string{"details", "--listen=:9080", "--shutdown-delay=5s"}},
		{"examples-bookinfo-ratings-v1", "9080/tcp", []string{"ratings", "--listen=:9080", "--shutdown-delay=5s"}},
		{"examples-bookinfo-reviews-v1", "9080/tcp", []string{"reviews", "--version=v1", "--listen=:9080", "--pod-name-env=HOSTNAME", "--shutdown-delay=5s"}},
		{"examples-bookinfo-reviews-v2", "9080/tcp", []string{"reviews", "--version=v2", "--listen=:9080", "--pod-name-env=HOSTNAME", "--shutdown-delay=5s"}},
		{"examples-bookinfo-reviews-v3", "9080/tcp", []string{"reviews", "--version=v3", "--listen=:9080", "--pod-name-env=HOSTNAME", "--shutdown-delay=5s"}},
		{"examples-bookinfo-productpage-v1", "9080/tcp", []string{"productpage", "--listen=:9080", "--shutdown-delay=5s"}},
		{"httpbin", "8080/tcp", []string{"httpbin", "--listen=:8080", "--shutdown-delay=5s"}},
	}
	for _, tc := range cases {
		a, err := Read(find(t, imgs, Registry+"/"+tc.name+":"+Tag).Path)
		if err != nil {
			t.Fatal(err)
		}
		rc := a.Images[0].Config.Config
		if want := append([]string{"/usr/local/bin/weft-sample"}, tc.args...); !slices.Equal(rc.Entrypoint, want) {
			t.Errorf("%s: entrypoint %q, want %q", tc.name, rc.Entrypoint, want)
		}
		if _, ok := rc.ExposedPorts[tc.port]; !ok || len(rc.ExposedPorts) != 1 {
			t.Errorf("%s: ports %v, want %s", tc.name, rc.ExposedPorts, tc.port)
		}
		// Never the proxy's UID: the capture rules exempt its traffic.
		if rc.User == "" || strings.HasPrefix(rc.User, "0") || strings.HasPrefix(rc.User, "1337") {
			t.Errorf("%s: user %q", tc.name, rc.User)
		}
	}
	a, err := Read(find(t, imgs, Registry+"/curl:"+Tag).Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bin/sleep", "usr/bin/curl"} {
		if h := a.Images[0].Files[f]; h == nil || h.Linkname != "/usr/local/bin/weft-sample" {
			t.Errorf("curl image: %s = %+v, want a link to weft-sample", f, h)
		}
	}
}

// Bookinfo from its images: productpage, details, reviews-v3 and ratings
// unpacked and run in chroots inside one fresh network namespace,
// productpage with its image's own entrypoint, finding its peers through
// the environment variables Kubernetes and Istio's images use; the page is
// fetched with the curl image's curl (also piped through grep by its
// busybox sh -c), the curl image's /bin/sleep waits.
func TestBookinfoFromImages(t *testing.T) {
	imgs, _ := hostImages(t)
	if os.Geteuid() != 0 {
		t.Skip("chroot and network namespaces need root")
	}
	for _, tool := range []string{"unshare", "ip", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	rootfs := map[string]string{}
	for _, n := range []string{"examples-bookinfo-productpage-v1", "examples-bookinfo-details-v1", "examples-bookinfo-reviews-v3", "examples-bookinfo-ratings-v1", "curl"} {
		p := find(t, imgs, Registry+"/"+n+":"+Tag).Path
		a, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		rootfs[n] = unpack(t, p, a.Images[0])
	}
	logs := t.TempDir()
	run := func(name, env, args string) string {
		return fmt.Sprintf("env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin %s chroot --userspec=65532:65532 %s %s >%s/%s.log 2>&1 & P=\"$P $!\"\n",
			env, rootfs[name], args, logs, name)
	}
	defer func() {
		if t.Failed() {
			ents, _ := os.ReadDir(logs)
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(logs, e.Name()))
				t.Logf("%s:\n%s", e.Name(), b)
			}
		}
	}()
	// productpage's own entrypoint binds :9080 (every address), so the
	// peers take other ports, which it learns from *_SERVICE_PORT.
	script := "set -e\nP=\ntrap 'kill $P 2>/dev/null' EXIT\nip link set lo up\n" +
		run("examples-bookinfo-details-v1", "", "/usr/local/bin/weft-sample details --listen=127.0.0.1:9081") +
		run("examples-bookinfo-ratings-v1", "", "/usr/local/bin/weft-sample ratings --listen=127.0.0.1:9083") +
		run("examples-bookinfo-reviews-v3", "HOSTNAME=reviews-v3-5b9bd44f4-x7x2w RATINGS_HOSTNAME=127.0.0.1 RATINGS_SERVICE_PORT=9083", "/usr/local/bin/weft-sample reviews --version=v3 --listen=127.0.0.1:9082 --pod-name-env=HOSTNAME") +
		run("examples-bookinfo-productpage-v1", "DETAILS_HOSTNAME=127.0.0.1 DETAILS_SERVICE_PORT=9081 REVIEWS_HOSTNAME=127.0.0.1 REVIEWS_SERVICE_PORT=9082",
			"/usr/local/bin/weft-sample productpage --listen=:9080") +
		// The curl image's sleep, as curl.yaml runs it, must still be there.
		"chroot " + rootfs["curl"] + " /bin/sleep infinity & SLEEP=$!; P=\"$P $!\"\n" +
		"for i in $(seq 300); do if chroot " + rootfs["curl"] + " curl -sf http://127.0.0.1:9080/productpage?u=normal > " + logs + "/page && grep -q reviews-v3 " + logs + "/page; then break; fi; sleep 0.1; done\n" +
		"kill -0 $SLEEP || { echo the curl image sleep exited; exit 3; }\n" +
		// Its busybox shell, as tasks run it: kubectl exec deploy/curl -- sh -c '…'.
		"chroot --userspec=65532:65532 " + rootfs["curl"] + " /bin/sh -c 'curl -s http://127.0.0.1:9080/productpage?u=normal | grep -o \"reviews-v3-[a-z0-9-]*\" | head -1' > " + logs + "/sh || exit 4\n" +
		"grep -q reviews-v3-5b9bd44f4-x7x2w " + logs + "/sh || { echo sh -c in the curl image: $(cat " + logs + "/sh); exit 5; }\n" +
		"cat " + logs + "/page\n"
	cmd := exec.Command("timeout", "120", "unshare", "-n", "sh", "-c", script)
	cmd.WaitDelay = 5 * time.Second // a stray child holding the output pipe
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bookinfo in chroots: %v\n%s\nscript:\n%s", err, out, script)
	}
	page := string(out)
	for _, want := range []string{"The Comedy of Errors", "reviews-v3-5b9bd44f4-x7x2w", `color="red"`, "glyphicon-star", "paperback"} {
		if !strings.Contains(page, want) {
			t.Errorf("productpage lacks %q:\n%.3000s", want, page)
		}
	}
}
