package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/inject"
)

func newKubeInjectCmd() *cobra.Command {
	var f installFlags
	var file, output string
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE",
		Short: "Add the sidecar to the pods and pod templates of Kubernetes YAML, offline (as istioctl kube-inject)",
		Long: `kube-inject reads Kubernetes YAML (-f FILE, or - for stdin) and writes it with Weft's
sidecar injected into every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob
and ReplicationController, exactly as the injection webhook would (same rules: a pod or template
labelled or annotated sidecar.istio.io/inject: "false" is left alone). Other documents pass
through. --set takes the installation's values (hub, tag, revision, namespace, trustDomain).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f is required (a file, or - for stdin)")
			}
			v, err := f.values()
			if err != nil {
				return err
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
			if err := inject.Documents(v.InjectConfig(), in, &out); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if output != "" {
				return os.WriteFile(output, out.Bytes(), 0o644)
			}
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "input YAML (- for stdin)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write here instead of stdout")
	return cmd
}
