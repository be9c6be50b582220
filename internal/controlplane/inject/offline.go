package inject

import (
	"context"
	"fmt"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Source says where `weft kube-inject` takes the injector ConfigMap's
// settings from, as istioctl kube-inject does: each key from its file when
// one is given, else from the cluster's ConfigMap when there is a client,
// else nowhere (the flags' config alone).
type Source struct {
	// ConfigFile holds the ConfigMap's "config" key and ValuesFile its
	// "values" key, as `kubectl -n istio-system get configmap
	// istio-sidecar-injector -o jsonpath='{.data.config}'` (and
	// '{.data.values}') print them (istioctl's --injectConfigFile and
	// --valuesFile).
	ConfigFile, ValuesFile string
	// Client reads Namespace/Name (ConfigMapName of the revision) for the
	// keys no file gives.
	Client          kubernetes.Interface
	Namespace, Name string
}

// OfflineConfig is base with the ConfigMap's settings from src applied by
// FromConfigMap, the function the webhook's LiveConfig applies them with,
// so kube-inject and the webhook inject the same pod alike. from says
// where the settings came from, for the user ("" when from nowhere). A
// ConfigMap missing from the cluster leaves base, as it does the webhook.
func OfflineConfig(ctx context.Context, base *Config, src Source) (c *Config, from string, err error) {
	data := map[string]string{}
	need := false
	for key, file := range map[string]string{ConfigMapConfigKey: src.ConfigFile, ConfigMapValuesKey: src.ValuesFile} {
		if file == "" {
			need = true
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("injector %s: %w", key, err)
		}
		data[key] = string(b)
	}
	switch {
	case src.ConfigFile != "" && src.ValuesFile != "":
		from = "files"
	case src.ConfigFile != "" || src.ValuesFile != "":
		from = "a file"
	}
	if need && src.Client != nil {
		cm, err := src.Client.CoreV1().ConfigMaps(src.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// As the webhook: no ConfigMap, the flags' config.
		case err != nil:
			return nil, "", fmt.Errorf("reading configmap %s/%s: %w", src.Namespace, src.Name, err)
		default:
			for _, key := range []string{ConfigMapConfigKey, ConfigMapValuesKey} {
				if _, ok := data[key]; !ok {
					data[key] = cm.Data[key]
				}
			}
			from = join(from, "configmap "+src.Namespace+"/"+src.Name)
		}
	}
	if from == "" {
		return base, "", nil
	}
	c, err = FromConfigMap(base, data)
	if err != nil {
		return nil, "", fmt.Errorf("injector config from %s: %w", from, err)
	}
	return c, from, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + " and " + b
}
