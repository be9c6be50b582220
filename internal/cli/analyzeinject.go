package cli

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/inject"
)

// injectionMessages are istioctl's injection findings on the live
// cluster: IST0102 NamespaceNotInjected (Info) for application namespaces
// with neither istio-injection nor istio.io/rev, and IST0103
// PodMissingProxy (Warning) for pods the webhook would inject that have no
// sidecar (created before the label, or while the webhook was down).
func (l *liveFlags) injectionMessages(ctx context.Context) ([]*config.Message, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if l.kubeconfig != "" {
		rules.ExplicitPath = l.kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: l.context}).ClientConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	skip := map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true, "local-path-storage": true, l.systemNS: true}
	icfg := &inject.Config{Policy: inject.PolicyEnabled}
	var out []*config.Message
	for _, ns := range nss.Items {
		if skip[ns.Name] || ns.DeletionTimestamp != nil {
			continue
		}
		_, hasInj := ns.Labels[inject.NamespaceLabel]
		_, hasRev := ns.Labels[inject.RevisionLabel]
		if !hasInj && !hasRev {
			out = append(out, &config.Message{Level: config.LevelInfo, Code: "IST0102", Name: "NamespaceNotInjected",
				Origin: "Namespace " + ns.Name, Namespace: ns.Name,
				Text: fmt.Sprintf("The namespace is not enabled for Istio injection. Run 'kubectl label namespace %[1]s istio-injection=enabled' to enable it, or 'kubectl label namespace %[1]s istio-injection=disabled' to explicitly mark it as not needing injection.", ns.Name)})
		}
		pods, err := client.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing pods of %s: %w", ns.Name, err)
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil || !inject.NamespaceSelected(ns.Labels, p.Labels, ns.Labels[inject.RevisionLabel]) {
				continue
			}
			if want, err := inject.Required(icfg, p); err != nil || !want {
				continue // already injected, opted out, host network
			}
			out = append(out, &config.Message{Level: config.LevelWarning, Code: "IST0103", Name: "PodMissingProxy",
				Origin: "Pod " + ns.Name + "/" + p.Name, Namespace: ns.Name,
				Text: fmt.Sprintf("The pod %s is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload.", p.Name)})
		}
	}
	return out, nil
}
