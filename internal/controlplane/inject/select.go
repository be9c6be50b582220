// Package inject adds Weft's sidecar to pods the way Istio's injector does:
// the same selection rules, the same annotations and the same pod shape
// (an init container that installs the capture rules, the proxy as a
// native sidecar), so Istio's labels, annotations and tooling keep working.
// Inject is a pure function of the pod and the Config; the webhook
// (webhook.go) and `weft kube-inject` both call it.
package inject

import (
	"fmt"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Namespace labels that select injection, as Istio's webhook configuration.
const (
	NamespaceLabel = "istio-injection" // "enabled" / "disabled"
	RevisionLabel  = "istio.io/rev"
)

// ignoredNamespaces are never injected (Istio's list).
var ignoredNamespaces = map[string]bool{
	metav1.NamespaceSystem: true, metav1.NamespacePublic: true, "kube-node-lease": true, "local-path-storage": true,
}

// NamespaceSelected reports whether the webhook is called for a pod in a
// namespace with nsLabels, following Istio's three webhooks:
// istio-injection=enabled (pod not labelled inject=false); istio.io/rev=
// revision without istio-injection; or neither namespace label and the pod
// labelled sidecar.istio.io/inject=true. The MutatingWebhookConfiguration
// (Webhooks) encodes the same rules as selectors.
func NamespaceSelected(nsLabels, podLabels map[string]string, revision string) bool {
	podInject, podSet := podLabels[label.SidecarInject.Name]
	_, hasInj := nsLabels[NamespaceLabel]
	rev, hasRev := nsLabels[RevisionLabel]
	def := revisionOrDefault(revision) == "default"
	switch {
	case nsLabels[NamespaceLabel] == "enabled":
		// istio-injection=enabled belongs to the default revision.
		return def && (!podSet || podInject != "false")
	case !hasInj && hasRev:
		return rev == revisionOrDefault(revision) && (!podSet || podInject != "false")
	case !hasInj && !hasRev:
		return def && podInject == "true"
	}
	return false
}

func revisionOrDefault(r string) string {
	if r == "" {
		return "default"
	}
	return r
}

// Policy is the injector's default for pods that say nothing.
type Policy string

const (
	PolicyEnabled  Policy = "enabled"
	PolicyDisabled Policy = "disabled"
)

// Required reports whether pod gets a sidecar, as Istio's injectRequired:
// host-network pods and system namespaces never; an explicit
// sidecar.istio.io/inject (label first, then annotation) wins; else
// neverInjectSelector, then alwaysInjectSelector, then the policy. An
// already injected pod is not required (idempotence).
func Required(c *Config, pod *corev1.Pod) (bool, error) {
	if pod.Spec.HostNetwork || ignoredNamespaces[pod.Namespace] {
		return false, nil
	}
	if Injected(pod) {
		return false, nil
	}
	v, ok := pod.Labels[label.SidecarInject.Name]
	if !ok {
		v, ok = pod.Annotations[annotation.SidecarInject.Name]
	}
	if ok {
		switch strings.ToLower(v) {
		case "y", "yes", "true", "on":
			return true, nil
		}
		return false, nil
	}
	podLabels := labels.Set(pod.Labels)
	for i, sel := range c.NeverInjectSelector {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return false, fmt.Errorf("neverInjectSelector[%d]: %w", i, err)
		}
		if !s.Empty() && s.Matches(podLabels) {
			return false, nil
		}
	}
	for i, sel := range c.AlwaysInjectSelector {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return false, fmt.Errorf("alwaysInjectSelector[%d]: %w", i, err)
		}
		if !s.Empty() && s.Matches(podLabels) {
			return true, nil
		}
	}
	return c.Policy != PolicyDisabled, nil
}

// Injected reports whether pod already has a sidecar: Istio's status
// annotation, or a container named istio-proxy.
func Injected(pod *corev1.Pod) bool {
	if pod.Annotations[annotation.SidecarStatus.Name] != "" {
		return true
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == ProxyContainer {
				return true
			}
		}
	}
	return false
}
