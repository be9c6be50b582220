package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/install"
)

// installFlags are shared by manifest generate, install, uninstall, check.
type installFlags struct {
	set        []string
	kubeconfig string
	context    string
}

func (f *installFlags) register(cmd *cobra.Command, cluster bool) {
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "override a value: revision, hub, tag, namespace, trustDomain, meshConfig.<field>, gateway.enabled, pilot.plaintextXDS, pilot.replicaCount (repeatable)")
	if cluster {
		cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
		cmd.Flags().StringVar(&f.context, "context", "", "kubeconfig context")
	}
}

func (f *installFlags) values() (install.Values, error) {
	v := install.DefaultValues()
	for _, s := range f.set {
		if err := v.Set(s); err != nil {
			return v, err
		}
	}
	return v, nil
}

func (f *installFlags) rest() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.kubeconfig != "" {
		rules.ExplicitPath = f.kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// objects renders and decodes the installation.
// applier talks to the cluster the flags name.
func (f *installFlags) applier() (*install.Applier, error) {
	cfg, err := f.rest()
	if err != nil {
		return nil, err
	}
	return install.NewApplier(cfg)
}

// cluster renders the installation's objects and connects to the cluster.
func (f *installFlags) cluster() ([]*unstructured.Unstructured, *install.Applier, error) {
	objs, err := f.objects()
	if err != nil {
		return nil, nil, err
	}
	a, err := f.applier()
	return objs, a, err
}

// printResults prints one line per object and returns err (a partial
// result comes with the error that stopped it).
func printResults(w io.Writer, res []install.Result, err error) error {
	for _, r := range res {
		fmt.Fprintln(w, r)
	}
	return err
}

func (f *installFlags) objects() ([]*unstructured.Unstructured, error) {
	v, err := f.values()
	if err != nil {
		return nil, err
	}
	y, err := install.Render(v)
	if err != nil {
		return nil, err
	}
	return install.Decode(y)
}

func newKubeCmds() []*cobra.Command {
	return []*cobra.Command{newManifestCmd(), newInstallCmd(), newUninstallCmd(), newCheckCmd()}
}

func newManifestCmd() *cobra.Command {
	var f installFlags
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Print the Kubernetes installation as YAML (kubectl apply -f accepts it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := f.values()
			if err != nil {
				return err
			}
			y, err := install.Render(v)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	f.register(gen, false)
	m := &cobra.Command{Use: "manifest", Short: "Kubernetes manifests of the installation"}
	m.AddCommand(gen)
	return m
}

func newInstallCmd() *cobra.Command {
	var (
		f      installFlags
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install Weft on a Kubernetes cluster (server-side apply; re-running is safe)",
		Long: `Install applies Istio's CRDs (unchanged), the system namespace, RBAC, the
control plane and the ingress gateway with server-side apply. Re-running it
changes only what differs. --dry-run sends everything to the API server as a
server-side dry run: validated and admitted, nothing stored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, a, err := f.cluster()
			if err != nil {
				return err
			}
			res, err := a.Apply(cmd.Context(), objs, dryRun)
			return printResults(cmd.OutOrStdout(), res, err)
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "server-side dry run: validate against the cluster, store nothing")
	return cmd
}

func newUninstallCmd() *cobra.Command {
	var (
		f     installFlags
		purge bool
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what install created (the CRDs and the namespace only with --purge)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, a, err := f.cluster()
			if err != nil {
				return err
			}
			if !purge {
				// Deleting a CRD deletes every resource of its kind: users'
				// config. Keep them, and the namespace, unless asked.
				kept := objs[:0]
				for _, o := range objs {
					if o.GetKind() != "CustomResourceDefinition" && o.GetKind() != "Namespace" {
						kept = append(kept, o)
					}
				}
				objs = kept
			}
			res, err := a.Delete(cmd.Context(), objs)
			return printResults(cmd.OutOrStdout(), res, err)
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete Istio's CRDs (and with them all Istio config) and the namespace")
	return cmd
}

func newCheckCmd() *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Say what of the installation is missing or unhealthy (exit 1 if anything is)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, a, err := f.cluster()
			if err != nil {
				return err
			}
			bad := 0
			for _, fd := range a.Check(cmd.Context(), objs) {
				if !fd.OK {
					bad++
				}
				fmt.Fprintln(cmd.OutOrStdout(), fd)
			}
			if bad > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d problems\n", bad)
				return exitError{1}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "all checks passed")
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}
