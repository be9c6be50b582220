package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/controlplane/inject"
)

func newKubeInjectCmd() *cobra.Command {
	var f installFlags
	var file, output string
	var src inject.Source
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE",
		Short: "Add the sidecar to the pods and pod templates of Kubernetes YAML, offline (as istioctl kube-inject)",
		Long: `kube-inject reads Kubernetes YAML (-f FILE, or - for stdin) and writes it with Weft's
sidecar injected into every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob
and ReplicationController, exactly as the injection webhook would (same rules: a pod or template
labelled or annotated sidecar.istio.io/inject: "false" is left alone). Other documents pass
through. --set takes the installation's values (hub, tag, revision, namespace, trustDomain).

The injector's settings (policy, neverInjectSelector/alwaysInjectSelector, the proxy image
from the values) apply over --set as the webhook applies them, from the same place as
istioctl kube-inject takes them: --injectConfigFile and --valuesFile (the istio-sidecar-injector
ConfigMap's "config" and "values" keys, e.g. from kubectl get configmap ... -o
jsonpath='{.data.config}'), else, with --kubeconfig or --context, that ConfigMap in the
cluster (istio-sidecar-injector[-<revision>] in the --set namespace, or
--injectConfigMapName). Without either, --set alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f is required (a file, or - for stdin)")
			}
			v, err := f.values()
			if err != nil {
				return err
			}
			c := v.InjectConfig()
			if f.kubeconfig != "" || f.context != "" {
				rc, err := f.rest()
				if err != nil {
					return err
				}
				if src.Client, err = kubernetes.NewForConfig(rc); err != nil {
					return err
				}
			}
			src.Namespace = v.Namespace
			if src.Name == "" {
				src.Name = inject.ConfigMapName(v.Revision)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, from, err := inject.OfflineConfig(ctx, c, src)
			if err != nil {
				return err
			}
			if src.Client != nil && from == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "kube-inject: no configmap %s/%s in the cluster; injecting with --set's values, as the webhook would\n", src.Namespace, src.Name)
			}
			var in io.Reader = cmd.InOrStdin()
			if file != "-" {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				in = bytes.NewReader(b)
			}
			var out bytes.Buffer
			if err := inject.Documents(c, in, &out); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if output != "" {
				return os.WriteFile(output, out.Bytes(), 0o644)
			}
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "input YAML (- for stdin)")
	cmd.Flags().StringVar(&src.ConfigFile, "injectConfigFile", "", `the injector ConfigMap's "config" key (policy, selectors) in a file`)
	cmd.Flags().StringVar(&src.ValuesFile, "valuesFile", "", `the injector ConfigMap's "values" key (hub, tag, proxy image) in a file`)
	cmd.Flags().StringVar(&src.Name, "injectConfigMapName", "", "the injector ConfigMap read from the cluster (default istio-sidecar-injector[-<revision>])")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write here instead of stdout")
	return cmd
}
