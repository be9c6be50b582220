package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/version"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, git commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), version.String("weft"))
			return nil
		},
	}
}
