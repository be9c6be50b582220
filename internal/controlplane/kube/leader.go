package kube

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease replicas elect a leader on.
const LeaseName = "weft-control-plane-leader"

// Election configures RunElected. Every replica serves xDS and the CA;
// only the leader does the work that must happen once (publishing the
// root certificate to namespaces, writing status).
type Election struct {
	Client    kubernetes.Interface
	Namespace string
	Identity  string // this replica (pod name)
	// LeaseDuration, RenewDeadline, RetryPeriod: client-go's timings
	// (default 15s, 10s, 2s, as Istio's).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// RunElected campaigns for the Lease until ctx ends. While this replica
// leads, lead runs with a context that ends when leadership is lost. A
// replica that loses the Lease campaigns again. On ctx's end the Lease is
// released, so another replica takes over without waiting for it to
// expire.
func RunElected(ctx context.Context, e Election, lead func(ctx context.Context)) {
	if e.LeaseDuration <= 0 {
		e.LeaseDuration = 15 * time.Second
	}
	if e.RenewDeadline <= 0 {
		e.RenewDeadline = 10 * time.Second
	}
	if e.RetryPeriod <= 0 {
		e.RetryPeriod = 2 * time.Second
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: e.Namespace},
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, ReleaseOnCancel: true, Name: LeaseName,
			LeaseDuration: e.LeaseDuration, RenewDeadline: e.RenewDeadline, RetryPeriod: e.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					e.Logger.Info("leading", "lease", e.Namespace+"/"+LeaseName, "identity", e.Identity)
					lead(ctx)
				},
				OnStoppedLeading: func() { e.Logger.Info("not leading", "identity", e.Identity) },
			},
		})
		if err != nil {
			e.Logger.Error("leader election", "err", err)
			return
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
}

// Leader returns the Lease's current holder ("" if none).
func Leader(ctx context.Context, client kubernetes.Interface, namespace string) (string, error) {
	l, err := client.CoordinationV1().Leases(namespace).Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}
