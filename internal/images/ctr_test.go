package images

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// privateContainerd starts containerd with its own root, state and socket
// (no CRI plugin), stopped at the end of the test. It skips with the reason
// when this machine cannot run one.
func privateContainerd(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Skip("no containerd binary (apt-get install containerd)")
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		t.Skip("no ctr binary (Debian's containerd package ships it)")
	}
	dir, err := os.MkdirTemp("", "weft-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	cfg := filepath.Join(dir, "config.toml")
	// Only the content and metadata plugins matter for an import.
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		select {
		case <-done:
			t.Fatalf("containerd exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not listen on %s in 30s:\n%s", sock, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every image imports into containerd's k8s.io namespace under its
// reference, as the node's kubelet will look it up.
func TestImportIntoContainerd(t *testing.T) {
	imgs, _ := hostImages(t)
	sock := privateContainerd(t)
	ctr := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, im := range imgs {
		ctr("images", "import", im.Path)
	}
	list := ctr("images", "ls", "-q")
	ver, _ := stamp(context.Background(), moduleRoot(t))
	for _, im := range imgs {
		if !strings.Contains(list, im.Ref+"\n") {
			t.Errorf("%s not listed after import:\n%s", im.Ref, list)
		}
		// The version tag `weft install` defaults to.
		if v := strings.TrimSuffix(im.Ref, ":"+Tag) + ":" + ver; ver != "" && !strings.Contains(list, v+"\n") {
			t.Errorf("%s not listed after import:\n%s", v, list)
		}
	}
	// The content is all there: containerd unpacks and checks it.
	for _, im := range imgs {
		ctr("images", "check", "name=="+im.Ref)
	}
	out := ctr("images", "check")
	if strings.Contains(out, "incomplete") || strings.Contains(out, "missing") {
		t.Errorf("ctr images check:\n%s", out)
	}
}
