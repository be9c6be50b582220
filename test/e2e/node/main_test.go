// Package node runs Weft on a real Kubernetes node on this machine
// (internal/kubetest: containerd, kubelet, controllers, kube-proxy, CoreDNS
// as real processes): the control plane installed as a pod with `weft
// install`, Bookinfo, httpbin and curl in injected pods, Istio's tasks
// applied with kubectl, pod drain and rolling restarts under load.
//
// It runs only with WEFT_KUBE_E2E=1 (root, containerd, runc, the CNI
// plugins and tools/kube/build.sh), and then fails instead of skipping
// when anything is missing.
package node

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/images"
	"github.com/weftmesh/weft/internal/kubetest"
)

var (
	repoRoot string
	binDir   string // weft and weft-proxy for the host side of the tests

	nodeOnce sync.Once
	theNode  *kubetest.Node
	nodeErr  error
	failed   bool
)

func TestMain(m *testing.M) {
	flag.Parse()
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..", "..")
	code := m.Run()
	if theNode != nil {
		if code != 0 {
			fmt.Fprintln(os.Stderr, theNode.Logs())
		}
		theNode.Stop()
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// node starts (once per test binary) the node with Weft's images imported.
func node(t *testing.T) *kubetest.Node {
	t.Helper()
	kubetest.RequireNode(t)
	nodeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		// A cache under .cache: unchanged inputs keep their tarballs.
		imgs, err := images.Build(ctx, repoRoot, filepath.Join(repoRoot, ".cache", "node-images"))
		if err != nil {
			nodeErr = fmt.Errorf("building images: %w", err)
			return
		}
		var paths []string
		for _, im := range imgs {
			paths = append(paths, im.Path)
		}
		t.Logf("%d images built in %v", len(imgs), time.Since(start).Round(time.Millisecond))
		if binDir, err = os.MkdirTemp("", "weft-node-e2e-bin-"); err != nil {
			nodeErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir, "./cmd/weft", "./cmd/weft-proxy")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			nodeErr = fmt.Errorf("building weft: %v\n%s", err, out)
			return
		}
		theNode, nodeErr = kubetest.StartNode(ctx, kubetest.NodeOptions{Images: paths, Log: t.Logf})
	})
	if nodeErr != nil {
		t.Fatalf("node: %v", nodeErr)
	}
	return theNode
}

// kubectl runs kubectl on the node and fails t on error.
func kubectl(t *testing.T, n *kubetest.Node, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := n.Kubectl(ctx, in, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func example(name string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}
