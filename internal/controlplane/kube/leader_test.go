package kube_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/kubetest"
)

// cutTransport fails every request once cut: a replica that crashed or was
// partitioned, which can neither renew nor release its Lease.
type cutTransport struct {
	rt  http.RoundTripper
	cut atomic.Bool
}

func (c *cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("replica killed")
	}
	return c.rt.RoundTrip(r)
}

func poll(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

func TestLeaderFailover(t *testing.T) {
	env := kubetest.Shared(t)
	ns := env.Namespace(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var leading sync.Map // identity -> true while leading
	replica := func(id string) *cutTransport {
		cfg := rest.CopyConfig(env.Config)
		ct := &cutTransport{}
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { ct.rt = rt; return ct }
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		go kube.RunElected(ctx, kube.Election{Client: client, Namespace: ns, Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond},
			func(lctx context.Context) {
				leading.Store(id, true)
				<-lctx.Done()
				leading.Delete(id)
			})
		return ct
	}
	holder := func() string { h, _ := kube.Leader(ctx, env.Client, ns); return h }
	a := replica("a")
	poll(t, "a leads", 20*time.Second, func() bool { _, ok := leading.Load("a"); return ok && holder() == "a" })
	replica("b")
	time.Sleep(500 * time.Millisecond) // b campaigns against a live leader
	if _, ok := leading.Load("b"); ok {
		t.Fatal("two leaders")
	}
	a.cut.Store(true)
	took := poll(t, "b takes the Lease after a is killed", 20*time.Second, func() bool {
		_, ok := leading.Load("b")
		return ok && holder() == "b"
	})
	t.Logf("b took the Lease %v after a was killed (lease 2s)", took)
	poll(t, "a stops leading on its own", 10*time.Second, func() bool { _, ok := leading.Load("a"); return !ok })
}

func TestCAFilesAndRootPublishing(t *testing.T) {
	env := kubetest.Shared(t)
	ns := env.Namespace(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d1, d2 := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	if _, err := kube.CAFiles(ctx, env.Client, ns, "cluster.local", d1); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CAFiles(ctx, env.Client, ns, "cluster.local", d2); err != nil {
		t.Fatal(err)
	}
	r1, _ := os.ReadFile(filepath.Join(d1, ca.PluginRoot))
	r2, _ := os.ReadFile(filepath.Join(d2, ca.PluginRoot))
	if len(r1) == 0 || !bytes.Equal(r1, r2) {
		t.Fatal("two replicas got different roots")
	}
	if st, err := os.Stat(filepath.Join(d1, ca.PluginKey)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	c, err := ca.New(ca.Options{PluginDir: d1})
	if err != nil {
		t.Fatalf("the CA does not load the secret's root: %v", err)
	}
	if !bytes.Equal(c.TrustBundle(), r1) {
		t.Errorf("trust bundle is not the secret's root")
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Get(ctx, kube.CASecret, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	var bundle atomic.Value
	bundle.Store([]byte("ROOT-1"))
	changed := make(chan struct{}, 1)
	go kube.PublishRoot(ctx, env.Client, func() []byte { return bundle.Load().([]byte) }, changed, nil)
	rootIn := func(ns string) string {
		cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, kube.RootCertMap, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data[kube.RootCertKey]
	}
	poll(t, "root published to an existing namespace", 20*time.Second, func() bool { return rootIn(ns) == "ROOT-1" })
	fresh := env.Namespace(t, nil)
	poll(t, "root published to a new namespace", 20*time.Second, func() bool { return rootIn(fresh) == "ROOT-1" })
	bundle.Store([]byte("ROOT-2"))
	changed <- struct{}{}
	poll(t, "new bundle published", 20*time.Second, func() bool { return rootIn(ns) == "ROOT-2" && rootIn(fresh) == "ROOT-2" })
}
