package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/inject"
)

// injectionMessages are istioctl's injection findings on the live
// cluster: IST0102 NamespaceNotInjected (Info) for application namespaces
// with neither istio-injection nor istio.io/rev; IST0103 PodMissingProxy
// (Warning) for pods the webhook would inject that have no sidecar
// (created before the label, or while the webhook was down); and for
// outdated sidecars IST0158 PodsIstioProxyImageMismatchInNamespace
// (Warning: the sidecar image differs from the one the injector's
// istio-sidecar-injector ConfigMap names) and Weft's WFT0040 (Warning: the
// sidecar.istio.io/status revision differs from the one the namespace
// selects). The injector's ConfigMap also supplies the policy and
// selectors IST0103 decides with.
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
	injectors, out, err := l.injectors(ctx, client)
	if err != nil {
		return nil, err
	}
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
		// The revision the namespace selects, and its injector (Istio's
		// analyzer: istio.io/rev when set, else the default revision).
		rev := "default"
		if r, ok := ns.Labels[inject.RevisionLabel]; ok {
			rev = r
		}
		icfg, found := injectors[inject.ConfigMapName(rev)]
		if !found {
			icfg = &inject.Config{Policy: inject.PolicyEnabled}
		}
		var staleImage, staleRev []string
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil || !inject.NamespaceSelected(ns.Labels, p.Labels, ns.Labels[inject.RevisionLabel]) {
				continue
			}
			if inject.Injected(p) {
				if outdatedImage(p, icfg.ProxyImage) {
					staleImage = append(staleImage, p.Name)
				}
				var st inject.Status
				if json.Unmarshal([]byte(p.Annotations[annotation.SidecarStatus.Name]), &st) == nil && st.Revision != "" && st.Revision != rev {
					staleRev = append(staleRev, p.Name)
				}
				continue
			}
			if want, err := inject.Required(icfg, p); err != nil || !want {
				continue // opted out, host network
			}
			out = append(out, &config.Message{Level: config.LevelWarning, Code: "IST0103", Name: "PodMissingProxy",
				Origin: "Pod " + ns.Name + "/" + p.Name, Namespace: ns.Name,
				Text: fmt.Sprintf("The pod %s is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload.", p.Name)})
		}
		if len(staleImage) > 0 {
			sort.Strings(staleImage)
			out = append(out, &config.Message{Level: config.LevelWarning, Code: "IST0158", Name: "PodsIstioProxyImageMismatchInNamespace",
				Origin: "Namespace " + ns.Name, Namespace: ns.Name,
				Text: fmt.Sprintf("The Istio proxy images of the pods running in the namespace do not match the image defined in the injection configuration (pod names: %v). This often happens after upgrading the Istio control-plane and can be fixed by redeploying the pods.", staleImage)})
		}
		if len(staleRev) > 0 {
			sort.Strings(staleRev)
			out = append(out, &config.Message{Level: config.LevelWarning, Code: "WFT0040", Name: "PodsIstioProxyRevisionMismatchInNamespace",
				Origin: "Namespace " + ns.Name, Namespace: ns.Name,
				Text: fmt.Sprintf("The Istio proxies of the pods running in the namespace were injected by a revision other than %q, which the namespace selects (pod names: %v). Redeploy the pods to get that revision's sidecar.", rev, staleRev)})
		}
	}
	return out, nil
}

// injectors reads the injector ConfigMaps (istio-sidecar-injector[-rev])
// of the system namespace, by name. One that does not parse is reported
// (IST0106, as for any invalid config) and left out.
func (l *liveFlags) injectors(ctx context.Context, client kubernetes.Interface) (map[string]*inject.Config, []*config.Message, error) {
	cms, err := client.CoreV1().ConfigMaps(l.systemNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing configmaps of %s: %w", l.systemNS, err)
	}
	out := map[string]*inject.Config{}
	var msgs []*config.Message
	for _, cm := range cms.Items {
		if !strings.HasPrefix(cm.Name, inject.ConfigMapPrefix) {
			continue
		}
		c, err := inject.FromConfigMap(&inject.Config{Policy: inject.PolicyEnabled}, cm.Data)
		if err != nil {
			msgs = append(msgs, &config.Message{Level: config.LevelError, Code: "IST0106", Name: "SchemaValidationError",
				// No namespace: it concerns every injected namespace, so
				// `analyze -n X` shows it too.
				Origin: "ConfigMap " + cm.Namespace + "/" + cm.Name,
				Text:   fmt.Sprintf("Schema validation error: %v", err)})
			continue
		}
		out[cm.Name] = c
	}
	return out, msgs, nil
}

// outdatedImage: the pod's istio-proxy container runs another image than
// want (the injector ConfigMap's); pods with their own proxyImage
// annotation chose theirs, as Istio's analyzer skips them.
func outdatedImage(p *corev1.Pod, want string) bool {
	if want == "" || p.Annotations[annotation.SidecarProxyImage.Name] != "" {
		return false
	}
	for _, c := range append(append([]corev1.Container{}, p.Spec.Containers...), p.Spec.InitContainers...) {
		if c.Name == inject.ProxyContainer && c.Image != want {
			return true
		}
	}
	return false
}
