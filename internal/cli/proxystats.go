package cli

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/xds"
)

func newProxyStatsCmd() *cobra.Command {
	var addr, admin, filter string
	var adminPort int
	cmd := &cobra.Command{
		Use:   "proxy-stats PROXY [--filter RE]",
		Short: "Show a proxy's Envoy-named stats (its admin /stats)",
		Long: `proxy-stats prints a proxy's stats in Envoy's naming, as "name: value" lines,
e.g. cluster.outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow.
PROXY is a node id, name.namespace or a workload name; its admin address is its
IP (from the control plane's proxy list) and --admin-port, or --admin host:port.
--filter keeps the stats whose name matches the regular expression.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var re *regexp.Regexp
			if filter != "" {
				var err error
				if re, err = regexp.Compile(filter); err != nil {
					return fmt.Errorf("--filter: %w", err)
				}
			}
			target := admin
			if target == "" {
				var ps []xds.ProxyStatus
				if err := newCPClient(cmd, addr).do(cmd.Context(), "GET", server.PathProxies, nil, nil, &ps); err != nil {
					return reportErr(cmd, err)
				}
				ps = filterProxies(ps, args[0])
				switch {
				case len(ps) == 0:
					fmt.Fprintf(cmd.ErrOrStderr(), "proxy %q is not connected\n", args[0])
					return exitError{1}
				case len(ps) > 1:
					fmt.Fprintf(cmd.ErrOrStderr(), "%q names %d proxies; use a node id\n", args[0], len(ps))
					return exitError{1}
				}
				target = net.JoinHostPort(ps[0].IP, strconv.Itoa(adminPort))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", "http://"+target+"/stats", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("reading stats from %s: %w", target, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("reading stats from %s: %s", target, resp.Status)
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				name := line
				if i := lastColon(line); i >= 0 {
					name = line[:i]
				}
				if re != nil && !re.MatchString(name) {
					continue
				}
				fmt.Fprintln(out, line)
			}
			return sc.Err()
		},
	}
	addCPFlag(cmd, &addr)
	cmd.Flags().StringVar(&admin, "admin", "", "the proxy's admin address host:port (skips the control plane lookup)")
	cmd.Flags().IntVar(&adminPort, "admin-port", 15000, "the proxy's admin port")
	cmd.Flags().StringVar(&filter, "filter", "", "only stats whose name matches this regular expression")
	return cmd
}

// lastColon finds the "name: value" separator (names contain colons in
// IPv6 addresses, values never do).
func lastColon(s string) int {
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == ':' && i+1 < len(s) && s[i+1] == ' ' {
			return i
		}
	}
	return -1
}
