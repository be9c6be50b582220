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
	fmt.Printf("kube-apiserver %s is up with Istio's CRDs.\n\n  export KUBECONFIG=%s\n  bin/weft control-plane --kubeconfig $KUBECONFIG\n\nCtrl-C stops it and removes its state.\n", env.Config.Host, env.Kubeconfig)
	<-ctx.Done()
	return nil
}
