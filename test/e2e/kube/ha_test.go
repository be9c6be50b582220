package kube_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/kubetest"
)

// TestLeaderKilled: two control plane processes share one API server; the
// leader is killed (SIGKILL: no Lease release); the other takes the Lease
// and the once-only work (publishing the root to a new namespace) moves
// with it, with the same root.
func TestLeaderKilled(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	applyCRDs(t, env)
	sys := env.Namespace(t, nil)
	procs := map[string]*proc{}
	for _, id := range []string{"cp-a", "cp-b"} {
		served := make(chan struct{})
		var once sync.Once
		procs[id] = start(t, "weft", func(l string) {
			if strings.Contains(l, "control plane serving") {
				once.Do(func() { close(served) })
			}
		}, "control-plane", "--kubeconfig", env.Kubeconfig, "--system-namespace", sys, "--replica-id", id, "--leader-lease", "3s",
			"--secure-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--monitoring-address", "127.0.0.1:0")
		select {
		case <-served:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not start", id)
		}
	}
	holder := func() string { h, _ := kube.Leader(ctx, env.Client, sys); return h }
	waitUntil := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		begin := time.Now()
		for !cond() {
			if time.Since(begin) > limit {
				t.Fatalf("%s: not within %v", what, limit)
			}
			time.Sleep(50 * time.Millisecond) // polling with a deadline
		}
		return time.Since(begin)
	}
	waitUntil("a leader", 30*time.Second, func() bool { h := holder(); return h == "cp-a" || h == "cp-b" })
	leader := holder()
	other := map[string]string{"cp-a": "cp-b", "cp-b": "cp-a"}[leader]
	secret, err := env.Client.CoreV1().Secrets(sys).Get(ctx, kube.CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := string(secret.Data["root-cert.pem"])

	procs[leader].cmd.Process.Signal(syscall.SIGKILL)
	took := waitUntil(other+" takes the Lease", 30*time.Second, func() bool { return holder() == other })
	t.Logf("%s killed; %s took the Lease after %v (lease 3s)", leader, other, took)

	// The survivor now does the once-only work, with the one root.
	ns, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "after-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil("root published by the new leader", 30*time.Second, func() bool {
		cm, err := env.Client.CoreV1().ConfigMaps(ns.Name).Get(ctx, kube.RootCertMap, metav1.GetOptions{})
		return err == nil && cm.Data[kube.RootCertKey] == root
	})
}
