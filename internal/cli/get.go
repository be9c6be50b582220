package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/server"
)

// kindNames maps what users type (kubectl's names, plurals and short
// names) to a Kind.
var kindNames = map[string]config.Kind{}

func init() {
	add := func(k config.Kind, names ...string) {
		lower := strings.ToLower(string(k))
		for _, n := range append(names, lower, lower+"s") {
			kindNames[n] = k
		}
	}
	add(config.KindVirtualService, "vs")
	add(config.KindDestinationRule, "dr")
	add(config.KindGateway, "gw")
	add(config.KindServiceEntry, "se")
	add(config.KindWorkloadEntry, "we")
	add(config.KindWorkloadGroup, "wg")
	add(config.KindSidecar)
	add(config.KindPeerAuthentication, "pa")
	add(config.KindRequestAuthentication, "ra")
	add(config.KindAuthorizationPolicy, "ap")
	add(config.KindTelemetry, "telemetries")
	add(config.KindService, "svc")
	add(config.KindMeshConfig, "mesh")
	add(config.KindSecret)
}

func parseKind(s string) (config.Kind, error) {
	s = strings.ToLower(s)
	if i := strings.IndexByte(s, '.'); i > 0 { // virtualservices.networking.istio.io
		s = s[:i]
	}
	if k, ok := kindNames[s]; ok {
		return k, nil
	}
	if s == "all" {
		return "", nil
	}
	return "", fmt.Errorf("unknown kind %q", s)
}

func newGetCmd() *cobra.Command {
	var (
		ns, output, addr string
		all              bool
	)
	cmd := &cobra.Command{
		Use:   "get KIND|all|status [NAME]",
		Short: "Show resources the control plane serves (or 'status': rejected config files)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newCPClient(cmd, addr)
			if strings.ToLower(args[0]) == "status" {
				return getStatus(cmd, c)
			}
			kind, err := parseKind(args[0])
			if err != nil {
				return err
			}
			q := url.Values{}
			if kind != "" {
				q.Set("kind", string(kind))
			}
			if kind == config.KindMeshConfig && ns == "" {
				all = true // one per mesh, wherever it is written
			}
			if !all {
				if ns == "" {
					ns = "default"
				}
				q.Set("namespace", ns)
			}
			if len(args) == 2 {
				q.Set("name", args[1])
			}
			var items []server.ConfigItem
			if err := c.do(cmd.Context(), "GET", server.PathConfig, q, nil, &items); err != nil {
				return reportErr(cmd, err)
			}
			if len(args) == 2 && len(items) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s/%s not found\n", kind, ns, args[1])
				return exitError{1}
			}
			out := cmd.OutOrStdout()
			switch output {
			case "yaml":
				for i, it := range items {
					if i > 0 {
						fmt.Fprintln(out, "---")
					}
					fmt.Fprint(out, it.YAML)
				}
			case "json":
				var objs []any
				for _, it := range items {
					var v any
					if err := yaml.Unmarshal([]byte(it.YAML), &v); err != nil {
						return fmt.Errorf("%s %s/%s: %w", it.Kind, it.Namespace, it.Name, err)
					}
					objs = append(objs, v)
				}
				var doc any = objs
				if len(args) == 2 && len(objs) == 1 {
					doc = objs[0]
				} else {
					doc = map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(doc)
			case "", "table":
				tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tFILE")
				for _, it := range items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Kind, it.Namespace, it.Name, it.File)
				}
				return tw.Flush()
			default:
				return fmt.Errorf("-o %q: want yaml, json or table", output)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "yaml, json or table")
	addCPFlag(cmd, &addr)
	return cmd
}

// getStatus prints config files and their problems; exit 1 when a file is
// rejected (its last good version is serving).
func getStatus(cmd *cobra.Command, c *cpClient) error {
	var st server.StatusBody
	if err := c.do(cmd.Context(), "GET", server.PathStatus, nil, nil, &st); err != nil {
		return reportErr(cmd, err)
	}
	out := cmd.OutOrStdout()
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "FILE\tRESOURCES\tSTATE")
	bad := false
	for _, f := range st.Files {
		state := "OK"
		if f.Stale {
			state, bad = "REJECTED (last good version serving)", true
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", f.File, f.Resources, state)
	}
	tw.Flush()
	for _, f := range st.Files {
		for _, e := range f.Errors {
			fmt.Fprintln(out, e)
		}
	}
	if st.RegistryError != "" {
		fmt.Fprintln(out, "registry:", st.RegistryError)
		bad = true
	}
	if len(st.JWKS) > 0 {
		tw = tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "JWKS URI\tKEYS\tFETCHED\tFAILURES\tLAST ERROR")
		for _, j := range st.JWKS {
			keys, fetched, lastErr := "none (tokens fail)", "-", "-"
			if j.HaveKeys {
				keys = "yes"
			}
			if !j.LastSuccess.IsZero() {
				fetched = j.LastSuccess.Format(time.RFC3339)
			}
			if j.LastError != "" {
				lastErr = j.LastError
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", j.URI, keys, fetched, j.Failures, lastErr)
		}
		tw.Flush()
	}
	fmt.Fprintf(out, "%d proxies connected\n", len(st.Proxies))
	if bad {
		return exitError{1}
	}
	return nil
}
