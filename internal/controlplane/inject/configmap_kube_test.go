package inject_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/meshtest"
)

// The webhook follows the istio-sidecar-injector ConfigMap on a real API
// server: neverInjectSelector, policy with alwaysInjectSelector and the
// values' image apply as the ConfigMap is created and edited; an edit that
// does not parse keeps the last good settings; deleting the ConfigMap goes
// back to the flags' config.
func TestWebhookFollowsConfigMap(t *testing.T) {
	env := kubetest.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sysNS := env.Namespace(t, nil)
	logs := &syncBuffer{}
	startLiveWebhook(ctx, t, env, sysNS, slog.New(slog.NewTextHandler(logs, nil)))
	ns := env.Namespace(t, map[string]string{"istio-injection": "enabled"})
	waitActive(t, env, ns)

	// image is the sidecar image the API server's dry-run creation of a
	// pod with app=<app> gets, "" when not injected.
	image := func(app string) (string, error) {
		p, err := env.Client.CoreV1().Pods(ns).Create(ctx, appPod("p-"+app, map[string]string{"app": app}, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return "", err
		}
		for _, c := range p.Spec.InitContainers {
			if c.Name == inject.ProxyContainer {
				return c.Image, nil
			}
		}
		return "", nil
	}
	expect := func(what string, want map[string]string) {
		t.Helper()
		meshtest.Eventually(t, what, 30*time.Second, func() error {
			for app, w := range want {
				got, err := image(app)
				if err != nil {
					return err
				}
				if got != w {
					return fmt.Errorf("app=%s: sidecar %q, want %q", app, got, w)
				}
			}
			return nil
		})
	}
	base := injectorConfig().ProxyImage
	cms := env.Client.CoreV1().ConfigMaps(sysNS)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: inject.ConfigMapName("")}, Data: map[string]string{
		"config": "policy: enabled\nneverInjectSelector:\n- matchLabels: {app: reviews}\n",
	}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("neverInjectSelector applies", map[string]string{"reviews": "", "ratings": base})

	cm.Data = map[string]string{
		"config": "policy: disabled\nalwaysInjectSelector:\n- matchLabels: {app: ratings}\n",
		"values": `{"global":{"hub":"weft.local","tag":"dev","proxy":{"image":"weft-proxy"}}}`,
	}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("policy disabled, alwaysInjectSelector and the values' image apply", map[string]string{"reviews": "", "details": "", "ratings": "weft.local/weft-proxy:dev"})

	cm.Data = map[string]string{"config": "policy: sometimes\n"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, "the bad edit is refused", 30*time.Second, func() error {
		if !strings.Contains(logs.String(), `policy \"sometimes\"`) {
			return fmt.Errorf("log: %s", logs.String())
		}
		return nil
	})
	expect("a bad edit keeps the last good settings", map[string]string{"details": "", "ratings": "weft.local/weft-proxy:dev"})

	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("deleting the ConfigMap goes back to the flags' config", map[string]string{"reviews": base, "details": base})
}

// startLiveWebhook serves the webhook with the flags' config
// (injectorConfig) under the injector ConfigMap of sysNS, followed until
// ctx ends.
func startLiveWebhook(ctx context.Context, t *testing.T, env *kubetest.Env, sysNS string, log *slog.Logger) {
	t.Helper()
	live := inject.NewLiveConfig(injectorConfig(), log)
	if !live.Watch(ctx, env.Client, sysNS, inject.ConfigMapName(""), 30*time.Second) {
		t.Fatal("informer did not sync")
	}
	startWebhookWith(t, env, &inject.Webhook{Live: live})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
