package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/controlplane/store"
)

// kubeFlags select Kubernetes mode for the control plane.
type kubeFlags struct {
	kubeconfig string
	context    string
	systemNS   string
}

func (k *kubeFlags) register(f *pflag.FlagSet) {
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "watch this cluster's API server instead of a config dir (in a pod without --config-dir: the in-cluster config)")
	f.StringVar(&k.context, "context", "", "kubeconfig context (default: the current one)")
	f.StringVar(&k.systemNS, "system-namespace", kube.DefaultSystemNamespace, "namespace of the control plane and its istio MeshConfig ConfigMap")
}

// restConfig is the client config: --kubeconfig, else the in-cluster one
// when running in a pod and no config dir was given; nil means standalone.
func (k *kubeFlags) restConfig(configDir string) (*rest.Config, error) {
	if k.kubeconfig != "" {
		if configDir != "" {
			return nil, fmt.Errorf("--kubeconfig and --config-dir are exclusive: config comes from one source")
		}
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: k.kubeconfig}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return cfg, nil
	}
	if configDir == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	return nil, nil
}

// source returns the server's NewSource for Kubernetes mode, or nil.
func (k *kubeFlags) source(ctx context.Context, configDir string, log *slog.Logger) (func(func()) (store.Source, error), error) {
	cfg, err := k.restConfig(configDir)
	if err != nil || cfg == nil {
		return nil, err
	}
	return func(onChange func()) (store.Source, error) {
		return kube.New(ctx, kube.Options{Config: cfg, SystemNamespace: k.systemNS, Logger: log.With("component", "kube"), OnChange: onChange})
	}, nil
}
