package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/xds"
)

func newProxyStatusCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "proxy-status [PROXY]",
		Short: "Show each connected proxy's xDS sync state (SYNCED, STALE, NACK, NOT SENT)",
		Long: `proxy-status lists connected proxies with the state of each xDS type:
SYNCED (the proxy ACKed the latest version), STALE (sent, not yet ACKed),
NACK (the proxy rejected it; the error follows the table) or NOT SENT.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ps []xds.ProxyStatus
			if err := newCPClient(cmd, addr).do(cmd.Context(), "GET", server.PathProxies, nil, nil, &ps); err != nil {
				return reportErr(cmd, err)
			}
			if len(args) == 1 {
				ps = filterProxies(ps, args[0])
				if len(ps) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "proxy %q is not connected\n", args[0])
					return exitError{1}
				}
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tWORKLOAD\tCDS\tLDS\tEDS\tRDS\tVERSION")
			for _, p := range ps {
				ver := p.Version
				if ver == "" {
					ver = "-"
				}
				typ := p.Type
				if p.Generator == "grpc" {
					typ = "grpc"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, typ, p.Workload,
					state(p.Types["CDS"]), state(p.Types["LDS"]), state(p.Types["EDS"]), state(p.Types["RDS"]), ver)
			}
			tw.Flush()
			for _, p := range ps {
				for _, t := range []string{"CDS", "LDS", "EDS", "RDS", "SDS"} {
					if st := p.Types[t]; st.State == xds.NACK {
						fmt.Fprintf(out, "NACK %s %s (version %s): %s\n", p.ID, t, st.NACKVersion, st.NACK)
					}
				}
				if p.CheckError != "" {
					fmt.Fprintf(out, "NOT PUBLISHED %s: %s\n", p.ID, p.CheckError)
				}
			}
			if len(args) == 1 && len(ps) == 1 {
				// One proxy: the versions behind each state.
				p := ps[0]
				fmt.Fprintf(out, "\nproxy %s (%s, %s xDS, %s, connected %s)\n", p.ID, p.IP, map[bool]string{false: "state-of-the-world", true: "delta"}[p.Delta], dash(p.Lifecycle), p.ConnectedAt.Format(time.RFC3339))
				tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "TYPE\tSTATE\tWANTED\tSENT\tACKED\tNACKS")
				for _, t := range []string{"CDS", "LDS", "EDS", "RDS", "SDS"} {
					st := p.Types[t]
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", t, state(st), dash(st.Version), dash(st.Sent), dash(st.Acked), st.NACKs)
				}
				tw.Flush()
			}
			return nil
		},
	}
	addCPFlag(cmd, &addr)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func state(t xds.TypeStatus) string {
	if t.State == "" {
		return xds.NotSent
	}
	return t.State
}

// filterProxies keeps proxies whose id, workload or workload name is name.
func filterProxies(ps []xds.ProxyStatus, name string) []xds.ProxyStatus {
	var out []xds.ProxyStatus
	for _, p := range ps {
		if p.ID == name || p.Workload == name || workloadName(p.Workload) == name {
			out = append(out, p)
		}
	}
	return out
}

func workloadName(w string) string {
	for i := 0; i < len(w); i++ {
		if w[i] == '.' {
			return w[:i]
		}
	}
	return w
}
