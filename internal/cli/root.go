// Package cli holds the subcommands of the weft binary. Each command lives in
// its own file and is listed once in newRoot.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/samples/command"
)

// exitError carries a process exit code out of a command without printing.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		var se command.ExitError
		if errors.As(err, &se) {
			return se.Code
		}
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "Weft: a service mesh in Go that speaks Istio's API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newVersionCmd(),
		newControlPlaneCmd(), newTokenCmd(), newApplyCmd(), newCreateCmd(), newGetCmd(), newDeleteCmd(), newProxyStatusCmd(), newProxyConfigCmd(), newProxyStatsCmd(),
		command.New(),
		newAnalyzeCmd(),
		newDemoCmd(),
		newExperimentalCmd(),
		newKubeInjectCmd(),
	)
	root.AddCommand(newKubeCmds()...)
	return root
}
