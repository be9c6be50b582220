package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
)

// analyzeFailedCode is istioctl analyze's exit code when it finds issues
// at or above the failure threshold.
const analyzeFailedCode = 79

// analyzeDataErrorCode is istioctl's exit code when some input files could
// not be parsed (and no message reached the threshold); --ignore-unknown
// turns it off.
const analyzeDataErrorCode = 65

// maxRepeats is how many messages of one kind a resource shows before the
// rest are counted in one line.
const maxRepeats = 10

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func newAnalyzeCmd() *cobra.Command {
	var (
		namespace, output, threshold string
		allNamespaces, ignoreUnknown bool
		live                         liveFlags
	)
	cmd := &cobra.Command{
		Use:   "analyze [-n NS] [--all-namespaces] [-o text|json|yaml] [--failure-threshold Info|Warning|Error] (FILE|DIR|- ... | -k)",
		Short: "Validate Istio configuration and check it for problems, like istioctl analyze",
		Long: `Analyze loads Istio configuration (Istio CRDs, Kubernetes Services and
Secrets, MeshConfig) from files, directories and "-" (stdin), validates every
resource the way Istio's admission webhook does, and runs cross-resource
analyzers: missing hosts, subsets and gateways, conflicting VirtualServices
and Gateways, mTLS conflicts between DestinationRules and
PeerAuthentications, and more. Messages use istioctl's codes and levels
(https://istio.io/latest/docs/reference/config/analysis/):

  Error [IST0101] (VirtualService default/reviews reviews.yaml:12) Referenced host+subset in destinationrule not found: "reviews+v4"

The files are the whole world: a reference to something not in them is
reported as not found.

Directories are read recursively (*.yaml, *.yml, *.json; hidden entries
skipped). A .weftignore file at the root of a directory argument lists
paths to skip, one per line, relative to that directory: a glob, "name/" for
a directory, "#" for comments; a pattern without "/" matches at any depth.
For example examples/.weftignore holds "invalid/" and "tasks/".

Resources without metadata.namespace are put in -n (default "default").
Messages are shown for every namespace, unless -n is given without
--all-namespaces: then only for that namespace.

Kinds that are not Istio config (Deployments, other tools' ConfigMaps and
custom resources) are skipped, as istioctl does. Istio kinds Weft does not
implement yet (EnvoyFilter, WasmPlugin, ProxyConfig, Gateway API kinds) get
one Warning [WFT0020] per kind. Files that are not Kubernetes YAML at all
(Helm values and templates, binaries, YAML syntax errors, files over 16 MiB)
are skipped with a note on stderr. A message repeated many times in one
resource is shown 10 times, then counted [WFT0021].

With -k (--use-kube) the live cluster is analyzed instead of files: every
Istio object, Service, Namespace and the Secrets Gateways reference, read
from the API server of --kubeconfig ($KUBECONFIG, ~/.kube/config or the
in-cluster config).

Exit status: 0 when no message reaches --failure-threshold, 79 (as istioctl)
when one does, 65 (as istioctl) when none does but some file could not be
parsed (0 with --ignore-unknown), 1 on usage errors.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			failAt, err := config.ParseLevel(threshold)
			if err != nil {
				return err
			}
			switch output {
			case "text", "json", "yaml":
			default:
				return fmt.Errorf("unknown output format %q (text, json or yaml)", output)
			}
			filter := cmd.Flags().Changed("namespace") && !allNamespaces
			var unsupported []*config.Error
			var res []*config.Resource
			var loadErr error
			switch {
			case live.use && len(args) > 0:
				return fmt.Errorf("-k analyzes the cluster: give no files")
			case live.use:
				res, loadErr = live.resources(cmd.Context())
			case len(args) == 0:
				return fmt.Errorf("give files or directories to analyze, or -k for the live cluster")
			default:
				res, loadErr = config.LoadPaths(args, config.Options{DefaultNamespace: namespace, Stdin: cmd.InOrStdin(),
					Unsupported: func(e *config.Error) { unsupported = append(unsupported, e) }})
			}
			var msgs []*config.Message
			var list config.ErrorList
			if errors.As(loadErr, &list) {
				msgs = append(msgs, config.ErrorMessages(list)...)
			} else if loadErr != nil {
				return loadErr
			}
			// Files that are not Kubernetes YAML at all are skipped with a
			// note on stderr, as istioctl does; they are not messages.
			unparsed := map[string]bool{}
			for _, e := range list {
				if e.Class == config.ClassFile {
					fmt.Fprintf(cmd.ErrOrStderr(), "Skipping %s: %s\n", e.Pos, e.Msg)
					unparsed[e.Pos.File] = true
				}
			}
			msgs = append(msgs, config.UnsupportedMessages(unsupported)...)
			msgs = append(msgs, config.Analyze(res, config.AnalyzeOptions{})...)
			if live.use {
				im, err := live.injectionMessages(cmd.Context())
				if err != nil {
					return err
				}
				msgs = append(msgs, im...)
			}
			config.SortMessages(msgs)
			msgs = config.CapRepeats(msgs, maxRepeats)
			if filter {
				kept := msgs[:0]
				for _, m := range msgs {
					if m.Namespace == "" || m.Namespace == namespace {
						kept = append(kept, m)
					}
				}
				msgs = kept
			}
			scope := "all namespaces"
			if filter {
				scope = "namespace: " + namespace
			}
			if err := writeMessages(cmd.OutOrStdout(), output, msgs); err != nil {
				return err
			}
			failed := false
			for _, m := range msgs {
				if m.Level >= failAt {
					failed = true
				}
			}
			if output == "text" {
				switch {
				case len(msgs) == 0 && len(unparsed) > 0:
					fmt.Fprintf(cmd.ErrOrStderr(), "\u2714 No validation issues found when analyzing %s (but %d %s could not be parsed).\n", scope, len(unparsed), plural(len(unparsed), "file", "files"))
				case len(msgs) == 0:
					fmt.Fprintf(cmd.ErrOrStderr(), "\u2714 No validation issues found when analyzing %s.\n", scope)
				case failed:
					fmt.Fprintf(cmd.ErrOrStderr(), "Error: Analyzers found issues when analyzing %s.\nSee https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions.\n", scope)
				}
			}
			if failed {
				return exitError{code: analyzeFailedCode}
			}
			if len(unparsed) > 0 && !ignoreUnknown {
				return exitError{code: analyzeDataErrorCode}
			}
			return nil
		},
	}
	live.register(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace for resources that name none; with it alone, only its messages are shown")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "show messages for every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	cmd.Flags().BoolVar(&ignoreUnknown, "ignore-unknown", false, "do not fail on files that are not Kubernetes YAML (Helm values, templates, binaries); they are skipped either way")
	cmd.Flags().StringVar(&threshold, "failure-threshold", "Error", "lowest message level that makes the exit status non-zero: Info, Warning or Error")
	return cmd
}

// jsonMessage is the shape of istioctl analyze -o json.
type jsonMessage struct {
	Code             string `json:"code" yaml:"code"`
	DocumentationURL string `json:"documentationUrl,omitempty" yaml:"documentationUrl,omitempty"`
	Level            string `json:"level" yaml:"level"`
	Message          string `json:"message" yaml:"message"`
	Origin           string `json:"origin,omitempty" yaml:"origin,omitempty"`
	Reference        string `json:"reference,omitempty" yaml:"reference,omitempty"`
	Line             int    `json:"line,omitempty" yaml:"line,omitempty"`
	Column           int    `json:"column,omitempty" yaml:"column,omitempty"`
}

func writeMessages(w io.Writer, format string, msgs []*config.Message) error {
	if format == "text" {
		for _, m := range msgs {
			if _, err := fmt.Fprintln(w, m.String()); err != nil {
				return err
			}
		}
		return nil
	}
	out := make([]jsonMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, jsonMessage{
			Code: m.Code, DocumentationURL: m.DocURL(), Level: m.Level.String(), Message: m.Text,
			Origin: m.Origin, Reference: m.Reference(), Line: m.Pos.Line, Column: m.Pos.Column,
		})
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return err
	}
	return enc.Close()
}
