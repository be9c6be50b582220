package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kfields "k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"
)

// The injector ConfigMap, as Istio's: istio-sidecar-injector (with a
// -<revision> suffix for a revision) in the system namespace, with the
// injection settings under "config" (YAML) and the Helm-style values under
// "values" (JSON). Weft reads the parts it implements and ignores the rest
// (Istio's templates, injectedAnnotations …), so Istio's ConfigMap works.
const (
	ConfigMapPrefix    = "istio-sidecar-injector"
	ConfigMapConfigKey = "config"
	ConfigMapValuesKey = "values"
	// DefaultProxyImageName is the image name in values.global.proxy.image.
	DefaultProxyImageName = "weft-proxy"
)

// ConfigMapName is the injector ConfigMap of a revision ("" is default).
func ConfigMapName(revision string) string {
	if revision == "" || revision == "default" {
		return ConfigMapPrefix
	}
	return ConfigMapPrefix + "-" + revision
}

// FileConfig is the part of the ConfigMap's "config" key Weft reads.
type FileConfig struct {
	Policy               Policy                 `json:"policy"`
	AlwaysInjectSelector []metav1.LabelSelector `json:"alwaysInjectSelector"`
	NeverInjectSelector  []metav1.LabelSelector `json:"neverInjectSelector"`
}

// ValuesConfig is the part of the ConfigMap's "values" key Weft reads.
type ValuesConfig struct {
	Global struct {
		Hub   string `json:"hub"`
		Tag   any    `json:"tag"` // Helm values may carry a number (1.24)
		Proxy struct {
			Image string `json:"image"`
		} `json:"proxy"`
	} `json:"global"`
	Revision string `json:"revision"`
}

// ProxyImage is the sidecar image the values name, as Istio's injector
// template and analyzer build it: global.proxy.image when it holds a "/",
// else <hub>/<proxy.image or weft-proxy>:<tag>; "" when hub or tag is unset.
func (v ValuesConfig) ProxyImage() string {
	img := v.Global.Proxy.Image
	if strings.Contains(img, "/") {
		return img
	}
	if img == "" {
		img = DefaultProxyImageName
	}
	tag := ""
	if v.Global.Tag != nil {
		tag = fmt.Sprint(v.Global.Tag)
	}
	if v.Global.Hub == "" || tag == "" {
		return ""
	}
	return strings.TrimRight(v.Global.Hub, "/") + "/" + img + ":" + tag
}

// ParseValues reads a "values" key; empty is no values.
func ParseValues(s string) (ValuesConfig, error) {
	var v ValuesConfig
	if strings.TrimSpace(s) == "" {
		return v, nil
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return v, fmt.Errorf("%s: %w", ConfigMapValuesKey, err)
	}
	return v, nil
}

// FromConfigMap is base with the ConfigMap's settings applied: policy and
// the selectors from "config", the proxy image from "values". A key that
// does not parse, an unknown policy or a bad selector is an error naming
// it, and nothing is applied.
func FromConfigMap(base *Config, data map[string]string) (*Config, error) {
	out := *base
	var fc FileConfig
	if s := data[ConfigMapConfigKey]; strings.TrimSpace(s) != "" {
		if err := yaml.Unmarshal([]byte(s), &fc); err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigMapConfigKey, err)
		}
	}
	switch fc.Policy {
	case "", PolicyEnabled:
		// Istio treats anything but "disabled" as enabled; an empty
		// policy is its default, enabled.
		out.Policy = PolicyEnabled
	case PolicyDisabled:
		out.Policy = PolicyDisabled
	default:
		return nil, fmt.Errorf("%s: policy %q: want enabled or disabled", ConfigMapConfigKey, fc.Policy)
	}
	for name, sels := range map[string][]metav1.LabelSelector{"neverInjectSelector": fc.NeverInjectSelector, "alwaysInjectSelector": fc.AlwaysInjectSelector} {
		for i := range sels {
			if _, err := metav1.LabelSelectorAsSelector(&sels[i]); err != nil {
				return nil, fmt.Errorf("%s: %s[%d]: %w", ConfigMapConfigKey, name, i, err)
			}
		}
	}
	out.NeverInjectSelector, out.AlwaysInjectSelector = fc.NeverInjectSelector, fc.AlwaysInjectSelector
	v, err := ParseValues(data[ConfigMapValuesKey])
	if err != nil {
		return nil, err
	}
	if img := v.ProxyImage(); img != "" {
		out.ProxyImage = img
	}
	return &out, nil
}

// ConfigMapData renders the ConfigMap's data for an installation: policy
// enabled, no selectors, and values naming hub, tag and the proxy image.
func ConfigMapData(hub, tag, revision string) (map[string]string, error) {
	fc, err := yaml.Marshal(FileConfig{Policy: PolicyEnabled, AlwaysInjectSelector: []metav1.LabelSelector{}, NeverInjectSelector: []metav1.LabelSelector{}})
	if err != nil {
		return nil, err
	}
	var v ValuesConfig
	v.Global.Hub, v.Global.Tag, v.Global.Proxy.Image, v.Revision = hub, tag, DefaultProxyImageName, revision
	vals, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return map[string]string{ConfigMapConfigKey: string(fc), ConfigMapValuesKey: string(vals)}, nil
}

// LiveConfig is the injector's configuration as the ConfigMap says now:
// base (from flags) with the ConfigMap applied, swapped atomically when the
// ConfigMap changes. A ConfigMap that does not parse leaves the last good
// configuration in place (and is logged); a deleted one reverts to base.
// Safe for concurrent use.
type LiveConfig struct {
	base *Config
	cur  atomic.Pointer[Config]
	log  *slog.Logger
}

// NewLiveConfig starts at base.
func NewLiveConfig(base *Config, log *slog.Logger) *LiveConfig {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &LiveConfig{base: base, log: log}
	l.cur.Store(base)
	return l
}

// Current is the configuration to inject with now.
func (l *LiveConfig) Current() *Config { return l.cur.Load() }

// Update applies a ConfigMap (nil: it is gone, back to base).
func (l *LiveConfig) Update(cm *corev1.ConfigMap) error {
	if cm == nil {
		l.cur.Store(l.base)
		return nil
	}
	c, err := FromConfigMap(l.base, cm.Data)
	if err != nil {
		return fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	l.cur.Store(c)
	return nil
}

// Watch follows the ConfigMap ns/name with an informer until ctx ends. It
// returns once the first list is applied, or after syncWait (false: the
// base config serves until the informer catches up).
func (l *LiveConfig) Watch(ctx context.Context, client kubernetes.Interface, ns, name string, syncWait time.Duration) bool {
	lw := cache.NewFilteredListWatchFromClient(client.CoreV1().RESTClient(), "configmaps", ns, func(o *metav1.ListOptions) {
		o.FieldSelector = kfields.OneTermEqualSelector("metadata.name", name).String()
	})
	apply := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != name {
			return
		}
		if err := l.Update(cm); err != nil {
			l.log.Error("injector config not applied; keeping the last good one", "err", err)
			return
		}
		l.log.Info("injector config applied", "configmap", ns+"/"+name, "policy", l.Current().Policy, "image", l.Current().ProxyImage)
	}
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.ConfigMap{},
		ResyncPeriod:  10 * time.Minute,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    apply,
			UpdateFunc: func(_, obj any) { apply(obj) },
			DeleteFunc: func(any) {
				_ = l.Update(nil)
				l.log.Info("injector configmap deleted; back to the flags' config", "configmap", ns+"/"+name)
			},
		},
	})
	go ctrl.Run(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	return cache.WaitForCacheSync(wctx.Done(), ctrl.HasSynced)
}
