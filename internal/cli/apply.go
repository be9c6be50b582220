package cli

import (
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/store"
)

func newApplyCmd() *cobra.Command {
	var (
		files []string
		ns    string
		addr  string
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- ...",
		Short: "Validate Istio YAML and write it into the control plane's config directory",
		Long: `Apply sends each file to the control plane, which validates it and writes
it atomically into its config directory: a resource that already exists is
updated in the file where it lives, a new one goes to <kind>-<ns>-<name>.yaml.
Nothing of a file is applied when any of its documents is invalid; the errors
name file:line and the command exits non-zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sendFiles(cmd, addr, server.PathApply, files, ns)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (stdin); repeatable")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace for resources that do not name one (default \"default\")")
	addCPFlag(cmd, &addr)
	cmd.MarkFlagRequired("filename")
	return cmd
}

// input is one file's content, named for error messages.
type input struct {
	name string
	data []byte
}

// readInputs expands -f arguments: "-" is stdin; a directory gives its
// *.yaml, *.yml and *.json files, recursively, skipping hidden entries and
// what its .weftignore lists.
func readInputs(stdin io.Reader, args []string) ([]input, error) {
	var out []input
	for _, a := range args {
		if a == "-" {
			b, err := io.ReadAll(io.LimitReader(stdin, 16<<20))
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			out = append(out, input{"<stdin>", b})
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		paths := []string{a}
		if st.IsDir() {
			if paths, err = store.ListFiles(a); err != nil {
				return nil, err
			}
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, input{p, b})
		}
	}
	return out, nil
}

// sendFiles posts each input to an apply or delete endpoint and prints
// what happened; any failure makes the exit status 1.
func sendFiles(cmd *cobra.Command, addr, path string, files []string, ns string) error {
	ins, err := readInputs(cmd.InOrStdin(), files)
	if err != nil {
		return err
	}
	c := newCPClient(cmd, addr)
	failed := false
	for _, in := range ins {
		q := url.Values{"name": {in.name}}
		if ns != "" {
			q.Set("namespace", ns)
		}
		var body server.ChangeBody
		if err := c.do(cmd.Context(), "POST", path, q, in.data, &body); err != nil {
			if reportErr(cmd, err) != err {
				failed = true
				continue
			}
			return err
		}
		for _, r := range body.Results {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s/%s %s\n", r.Key.Kind, r.Key.Namespace, r.Key.Name, r.Action)
		}
	}
	if failed {
		return exitError{1}
	}
	return nil
}
