package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// newExperimentalCmd groups commands whose output may still change (as
// istioctl's "x").
func newExperimentalCmd() *cobra.Command {
	x := &cobra.Command{Use: "x", Aliases: []string{"experimental"}, Short: "Experimental commands"}
	x.AddCommand(newDescribeCmd(), newAuthzCmd())
	return x
}

func newDescribeCmd() *cobra.Command {
	d := &cobra.Command{Use: "describe", Short: "Explain the mesh configuration that applies to a workload"}
	var addr, output string
	w := &cobra.Command{
		Use:     "workload PROXY",
		Aliases: []string{"pod"},
		Short:   "Which mutual TLS mode applies to a workload and why",
		Long: `describe workload shows the PeerAuthentication in force for a connected
proxy's workload (mesh, namespace, workload and port-level, with Istio's
inheritance), what its sidecar accepts on each port, what clients send to
each of its services (auto mTLS or a DestinationRule's tls) and the
combinations that would fail. PROXY is a node id, name.namespace or a
workload name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var desc translate.MTLSDescription
			path := server.PathDescribe + "/" + url.PathEscape(args[0]) + "/mtls"
			if err := newCPClient(cmd, addr).do(cmd.Context(), "GET", path, nil, nil, &desc); err != nil {
				return reportErr(cmd, err)
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(&desc)
			case "", "text":
			default:
				return fmt.Errorf("-o %q: want json or text", output)
			}
			fmt.Fprintf(out, "Workload:  %s\nIdentity:  %s\n", desc.Workload, desc.Identity)
			cert := "yes"
			if !desc.MeshTLS {
				cert = "no (the proxy cannot take part in mutual TLS)"
			}
			fmt.Fprintf(out, "Workload certificate: %s\nAuto mTLS (enableAutoMtls): %t\n", cert, desc.AutoMTLS)
			fmt.Fprintf(out, "\nPeerAuthentication: %s (from %s)\n", desc.Mode, desc.ModeFrom)
			for _, p := range desc.Policies {
				fmt.Fprintf(out, "  %-9s %s  mtls.mode=%s\n", p.Scope, p.Name, p.Mode)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nPORT\tPROTOCOL\tMODE\tACCEPTS\tWHY")
			for _, p := range desc.Ports {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.Port, p.Protocol, p.Mode, p.Accepts, p.Reason)
			}
			tw.Flush()
			if len(desc.Services) > 0 {
				tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "\nSERVICE\tPORT\tCLIENTS SEND\tDESTINATIONRULE\tWHY")
				for _, s := range desc.Services {
					dr := s.DestinationRule
					if dr == "" {
						dr = "-"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Host, s.Port, s.ClientTLS, dr, s.Reason)
				}
				tw.Flush()
			}
			for _, w := range desc.Warnings {
				fmt.Fprintf(out, "\nWARNING: %s\n", w)
			}
			return nil
		},
	}
	w.Flags().StringVarP(&output, "output", "o", "", "json or text")
	addCPFlag(w, &addr)
	d.AddCommand(w)
	return d
}
