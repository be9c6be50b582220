// Command kubedev runs the test API server (kube-apiserver + etcd on
// loopback, see internal/kubetest) until interrupted, with Istio's CRDs
// installed, and prints how to reach it: `make kube-dev`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kube-dev:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := kubetest.Start(ctx, kubetest.Options{Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer env.Stop()
	a, err := install.NewApplier(env.Config)
	if err != nil {
		return err
	}
	objs, err := install.Decode(install.CRDs)
	if err != nil {
		return err
	}
	if _, err := a.Apply(ctx, objs, false); err != nil {
		return fmt.Errorf("installing Istio's CRDs: %w", err)
	}
	// The control plane keeps its CA Secret and Lease in istio-system.
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	fmt.Printf("kube-apiserver %s is up with Istio's CRDs and istio-system.\n\n  export KUBECONFIG=%s\n  bin/weft control-plane --kubeconfig $KUBECONFIG --xds-address 127.0.0.1:15010\n\nCtrl-C stops it and removes its state.\n", env.Config.Host, env.Kubeconfig)
	<-ctx.Done()
	return nil
}
