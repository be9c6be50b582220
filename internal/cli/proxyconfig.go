package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/controlplane/server"
)

var proxyConfigSections = []string{"clusters", "listeners", "routes", "endpoints", "secrets", "all"}

func newProxyConfigCmd() *cobra.Command {
	var addr, output, admin string
	cmd := &cobra.Command{
		Use:   "proxy-config clusters|listeners|routes|endpoints|secrets|all PROXY",
		Short: "Show the xDS config the control plane serves a proxy",
		Long: `proxy-config prints what the control plane last published to a proxy, as
tables like istioctl's, or with -o json in the shape of Envoy's /config_dump.
PROXY is a node id, name.namespace or a workload name.

'secrets' asks the proxy itself (its admin /config_dump): the workload
certificate ("default") and trust bundle ("ROOTCA") never leave the proxy,
so the table shows each certificate's serial, identity (SAN), validity and
when the proxy rotates it. Private keys are never shown.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			section := strings.ToLower(args[0])
			if section == "cluster" || section == "listener" || section == "route" || section == "endpoint" || section == "secret" {
				section += "s"
			}
			if !contains(proxyConfigSections, section) {
				return fmt.Errorf("unknown section %q: want one of %s", args[0], strings.Join(proxyConfigSections, ", "))
			}
			if section == "secrets" {
				return proxySecrets(cmd, addr, admin, args[1], output)
			}
			var raw bytes.Buffer
			path := server.PathProxies + "/" + url.PathEscape(args[1]) + "/config_dump"
			if err := newCPClient(cmd, addr).do(cmd.Context(), "GET", path, nil, nil, &raw); err != nil {
				return reportErr(cmd, err)
			}
			dump := &adminv3.ConfigDump{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw.Bytes(), dump); err != nil {
				return fmt.Errorf("decoding config dump: %w", err)
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				return printDumpJSON(out, dump, section)
			case "", "table":
			default:
				return fmt.Errorf("-o %q: want json or table", output)
			}
			for _, c := range dump.GetConfigs() {
				m, err := c.UnmarshalNew()
				if err != nil {
					return fmt.Errorf("decoding %s: %w", c.GetTypeUrl(), err)
				}
				switch d := m.(type) {
				case *adminv3.ClustersConfigDump:
					if section == "clusters" || section == "all" {
						printClusters(out, d)
					}
				case *adminv3.ListenersConfigDump:
					if section == "listeners" || section == "all" {
						printListeners(out, d)
					}
				case *adminv3.RoutesConfigDump:
					if section == "routes" || section == "all" {
						printRoutes(out, d)
					}
				case *adminv3.EndpointsConfigDump:
					if section == "endpoints" || section == "all" {
						printEndpoints(out, d)
					}
				case *adminv3.SecretsConfigDump:
					if section == "secrets" || section == "all" {
						printSecrets(out, d)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or table")
	cmd.Flags().StringVar(&admin, "admin", "", "secrets: the proxy's admin address host:port (default: its IP from the control plane, port 15000)")
	addCPFlag(cmd, &addr)
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func printDumpJSON(w io.Writer, dump *adminv3.ConfigDump, section string) error {
	if section != "all" {
		want := map[string]string{
			"clusters":  "envoy.admin.v3.ClustersConfigDump",
			"listeners": "envoy.admin.v3.ListenersConfigDump",
			"routes":    "envoy.admin.v3.RoutesConfigDump",
			"endpoints": "envoy.admin.v3.EndpointsConfigDump",
			"secrets":   "envoy.admin.v3.SecretsConfigDump",
		}[section]
		var keep []*anypb.Any
		for _, c := range dump.GetConfigs() {
			if strings.HasSuffix(c.GetTypeUrl(), "/"+want) {
				keep = append(keep, c)
			}
		}
		dump = &adminv3.ConfigDump{Configs: keep}
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(dump)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func unpack[T proto.Message](a *anypb.Any, m T) (T, bool) {
	if a == nil || a.UnmarshalTo(m) != nil {
		return m, false
	}
	return m, true
}

// unpacked returns the resources of type T that get finds in a dump's
// entries; entries that hold another type (or none) are skipped.
func unpacked[T proto.Message, E any](entries []E, get func(E) *anypb.Any) []T {
	var out []T
	for _, e := range entries {
		var zero T
		if m, ok := unpack(get(e), zero.ProtoReflect().New().Interface().(T)); ok {
			out = append(out, m)
		}
	}
	return out
}

// table is the tab-aligned output of the proxy-config commands.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, columns ...string) table {
	t := table{tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
	fmt.Fprintln(t.tw, strings.Join(columns, "\t"))
	return t
}

func (t table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprintln(t.tw)
}

func (t table) flush() { t.tw.Flush() }

func printClusters(w io.Writer, d *adminv3.ClustersConfigDump) {
	t := newTable(w, "SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE")
	for _, c := range unpacked[*clusterv3.Cluster](d.GetDynamicActiveClusters(), (*adminv3.ClustersConfigDump_DynamicCluster).GetCluster) {
		fqdn, port, subset, dir := c.GetName(), "-", "-", "-"
		if f := strings.Split(c.GetName(), "|"); len(f) == 4 {
			dir, port, subset, fqdn = f[0], f[1], f[2], f[3]
			if subset == "" {
				subset = "-"
			}
			if fqdn == "" {
				fqdn = "-"
			}
		}
		typ := c.GetType().String()
		if c.GetClusterType() != nil {
			typ = c.GetClusterType().GetName()
		}
		t.row(fqdn, port, subset, dir, typ)
	}
	t.flush()
}

func sockAddr(a *corev3.Address) (string, string) {
	if p := a.GetPipe(); p != nil {
		return "unix://" + p.GetPath(), "-"
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return "-", "-"
	}
	return sa.GetAddress(), fmt.Sprint(sa.GetPortValue())
}

func printListeners(w io.Writer, d *adminv3.ListenersConfigDump) {
	t := newTable(w, "NAME", "ADDRESS", "PORT", "MATCH", "DESTINATION")
	activeListener := func(dl *adminv3.ListenersConfigDump_DynamicListener) *anypb.Any {
		return dl.GetActiveState().GetListener()
	}
	for _, l := range unpacked[*listenerv3.Listener](d.GetDynamicListeners(), activeListener) {
		addr, port := sockAddr(l.GetAddress())
		if api := l.GetApiListener().GetApiListener(); api != nil {
			dest := "-"
			if h, ok := unpack(api, &hcmv3.HttpConnectionManager{}); ok {
				dest = hcmDest(h)
			}
			t.row(l.GetName(), "-", "-", "API listener (gRPC)", dest)
			continue
		}
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		if len(chains) == 0 {
			t.row(l.GetName(), addr, port, "-", "-")
		}
		for _, fc := range chains {
			t.row(l.GetName(), addr, port, chainMatch(fc.GetFilterChainMatch()), chainDest(fc))
		}
	}
	t.flush()
}

func chainMatch(m *listenerv3.FilterChainMatch) string {
	if m == nil {
		return "ALL"
	}
	var parts []string
	if p := m.GetDestinationPort(); p != nil {
		parts = append(parts, fmt.Sprintf("port=%d", p.GetValue()))
	}
	for _, r := range m.GetPrefixRanges() {
		parts = append(parts, fmt.Sprintf("%s/%d", r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
	}
	if sn := m.GetServerNames(); len(sn) > 0 {
		parts = append(parts, "sni="+strings.Join(sn, ","))
	}
	if tp := m.GetTransportProtocol(); tp != "" {
		parts = append(parts, "transport="+tp)
	}
	if ap := m.GetApplicationProtocols(); len(ap) > 0 {
		parts = append(parts, "alpn="+strings.Join(ap, ","))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, " ")
}

func chainDest(fc *listenerv3.FilterChain) string {
	for _, f := range fc.GetFilters() {
		if h, ok := unpack(f.GetTypedConfig(), &hcmv3.HttpConnectionManager{}); ok {
			return hcmDest(h)
		}
		if t, ok := unpack(f.GetTypedConfig(), &tcpproxyv3.TcpProxy{}); ok {
			if wc := t.GetWeightedClusters(); wc != nil {
				var cs []string
				for _, c := range wc.GetClusters() {
					cs = append(cs, fmt.Sprintf("%s(%d)", c.GetName(), c.GetWeight()))
				}
				return "Clusters: " + strings.Join(cs, ", ")
			}
			return "Cluster: " + t.GetCluster()
		}
	}
	return "-"
}

func hcmDest(h *hcmv3.HttpConnectionManager) string {
	if r := h.GetRds(); r != nil {
		return "Route: " + r.GetRouteConfigName()
	}
	if rc := h.GetRouteConfig(); rc != nil {
		return "Inline route: " + rc.GetName()
	}
	return "HTTP"
}

func printRoutes(w io.Writer, d *adminv3.RoutesConfigDump) {
	t := newTable(w, "NAME", "VHOST NAME", "DOMAINS", "MATCH", "DESTINATION")
	for _, rc := range unpacked[*routev3.RouteConfiguration](d.GetDynamicRouteConfigs(), (*adminv3.RoutesConfigDump_DynamicRouteConfig).GetRouteConfig) {
		for _, vh := range rc.GetVirtualHosts() {
			domains := strings.Join(vh.GetDomains(), ",")
			if len(vh.GetDomains()) > 3 {
				domains = strings.Join(vh.GetDomains()[:2], ",") + fmt.Sprintf(" +%d more", len(vh.GetDomains())-2)
			}
			for _, r := range vh.GetRoutes() {
				t.row(rc.GetName(), vh.GetName(), domains, routeMatch(r.GetMatch()), routeDest(r))
			}
		}
	}
	t.flush()
}

func routeMatch(m *routev3.RouteMatch) string {
	var s string
	switch {
	case m.GetPath() != "":
		s = m.GetPath()
	case m.GetSafeRegex() != nil:
		s = "~" + m.GetSafeRegex().GetRegex()
	case m.GetConnectMatcher() != nil:
		s = "CONNECT"
	case m.GetPathSeparatedPrefix() != "":
		s = m.GetPathSeparatedPrefix() + "/*"
	default:
		s = m.GetPrefix() + "*"
	}
	var hs []string
	for _, h := range m.GetHeaders() {
		hs = append(hs, h.GetName())
	}
	sort.Strings(hs)
	if len(hs) > 0 {
		s += " [" + strings.Join(hs, ",") + "]"
	}
	return s
}

func routeDest(r *routev3.Route) string {
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if c := a.Route.GetCluster(); c != "" {
			return c
		}
		var cs []string
		for _, c := range a.Route.GetWeightedClusters().GetClusters() {
			cs = append(cs, fmt.Sprintf("%s(%d)", c.GetName(), c.GetWeight().GetValue()))
		}
		return strings.Join(cs, ", ")
	case *routev3.Route_Redirect:
		return "redirect"
	case *routev3.Route_DirectResponse:
		return fmt.Sprintf("direct response %d", a.DirectResponse.GetStatus())
	}
	return "-"
}

func printEndpoints(w io.Writer, d *adminv3.EndpointsConfigDump) {
	t := newTable(w, "ENDPOINT", "STATUS", "WEIGHT", "CLUSTER")
	for _, cla := range unpacked[*endpointv3.ClusterLoadAssignment](d.GetDynamicEndpointConfigs(), (*adminv3.EndpointsConfigDump_DynamicEndpointConfig).GetEndpointConfig) {
		for _, le := range cla.GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				addr, port := sockAddr(lb.GetEndpoint().GetAddress())
				weight := lb.GetLoadBalancingWeight().GetValue()
				if weight == 0 {
					weight = 1
				}
				t.row(addr+":"+port, lb.GetHealthStatus(), weight, cla.GetClusterName())
			}
		}
	}
	t.flush()
}

func printSecrets(w io.Writer, d *adminv3.SecretsConfigDump) {
	t := newTable(w, "RESOURCE NAME", "VERSION")
	for _, s := range d.GetDynamicActiveSecrets() {
		t.row(s.GetName(), s.GetVersionInfo())
	}
	t.flush()
}
