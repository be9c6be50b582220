package cli

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/kube"
)

// liveFlags are analyze's -k: read the config from a cluster.
type liveFlags struct {
	use                 bool
	kubeconfig, context string
	systemNS            string
}

func (l *liveFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&l.use, "use-kube", "k", false, "analyze the live cluster's config instead of files")
	cmd.Flags().StringVar(&l.kubeconfig, "kubeconfig", "", "with -k: kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)")
	cmd.Flags().StringVar(&l.context, "context", "", "with -k: kubeconfig context")
	cmd.Flags().StringVar(&l.systemNS, "system-namespace", kube.DefaultSystemNamespace, "with -k: namespace of the istio MeshConfig ConfigMap")
}

// resources reads the cluster as the control plane does. Objects the
// control plane refuses (validation) come back as errors, as a file's do.
func (l *liveFlags) resources(ctx context.Context) ([]*config.Resource, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if l.kubeconfig != "" {
		rules.ExplicitPath = l.kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: l.context}).ClientConfig()
	if err != nil {
		return nil, err
	}
	src, err := kube.New(ctx, kube.Options{Config: cfg, SystemNamespace: l.systemNS})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var out []*config.Resource
	for _, r := range src.Resources() {
		// Pods are workloads that selectors pick; endpoints and nodes are
		// the registry's alone.
		if r.Kind != config.KindEndpointSlice && r.Kind != config.KindNode {
			out = append(out, r)
		}
	}
	var list config.ErrorList
	for _, inv := range src.Invalid() {
		if inv.Resource != nil && inv.Resource.Spec != nil {
			list = append(list, config.Validate(inv.Resource)...)
		}
	}
	if len(list) > 0 {
		return out, list
	}
	return out, nil
}
