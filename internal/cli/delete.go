package cli

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/server"
)

func newDeleteCmd() *cobra.Command {
	var (
		files []string
		ns    string
		addr  string
	)
	cmd := &cobra.Command{
		Use:   "delete (-f FILE|DIR|- | KIND NAME)",
		Short: "Remove resources from the control plane's config directory",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(files) > 0 && len(args) > 0 {
				return fmt.Errorf("give either -f or KIND NAME, not both")
			}
			if len(files) == 0 && len(args) != 2 {
				return fmt.Errorf("want KIND NAME (or -f FILE)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) > 0 {
				return sendFiles(cmd, addr, server.PathDelete, files, ns)
			}
			kind, err := parseKind(args[0])
			if err != nil {
				return err
			}
			if ns == "" {
				ns = "default"
			}
			var body server.ChangeBody
			path := fmt.Sprintf("%s/%s/%s/%s", server.PathConfig, url.PathEscape(string(kind)), url.PathEscape(ns), url.PathEscape(args[1]))
			if err := newCPClient(cmd, addr).do(cmd.Context(), "DELETE", path, nil, nil, &body); err != nil {
				return reportErr(cmd, err)
			}
			for _, r := range body.Results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s/%s %s\n", r.Key.Kind, r.Key.Namespace, r.Key.Name, r.Action)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (stdin) naming the resources; repeatable")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace (default \"default\")")
	addCPFlag(cmd, &addr)
	return cmd
}
