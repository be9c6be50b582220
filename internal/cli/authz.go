package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/controlplane/server"
)

func newAuthzCmd() *cobra.Command {
	a := &cobra.Command{Use: "authz", Short: "Inspect authorization on a proxy"}
	var addr string
	var verbose bool
	c := &cobra.Command{
		Use:   "check PROXY",
		Short: "List the authorization policies a proxy enforces and what they allow (as istioctl x authz check)",
		Long: `check reads the configuration the control plane serves to PROXY (a node id,
name.namespace or workload name) and lists, per filter chain that serves
its workload, the request authentication (JWT issuers), the CUSTOM, DENY,
ALLOW and AUDIT policies with their rules, and dry-run policies. With -v
every rule is shown as the condition it checks.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw bytes.Buffer
			path := server.PathProxies + "/" + url.PathEscape(args[0]) + "/config_dump"
			if err := newCPClient(cmd, addr).do(cmd.Context(), "GET", path, nil, nil, &raw); err != nil {
				return reportErr(cmd, err)
			}
			dump := &adminv3.ConfigDump{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw.Bytes(), dump); err != nil {
				return fmt.Errorf("decoding config dump: %w", err)
			}
			return printAuthz(cmd.OutOrStdout(), dump, verbose)
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "show every rule's conditions")
	addCPFlag(c, &addr)
	a.AddCommand(c)
	return a
}

// authzRow is one policy rule as a proxy enforces it.
type authzRow struct {
	action, policy string
	rules          int
	dryRun         bool
	chains         map[string]bool
	detail         []string
}

var policyNameRE = regexp.MustCompile(`ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[(\d+)\]`)

func printAuthz(w io.Writer, dump *adminv3.ConfigDump, verbose bool) error {
	rows := map[string]*authzRow{}
	issuers := map[string]bool{}
	var order []string
	add := func(chain, action string, r *rbacv3.RBAC, dry bool) {
		names := make([]string, 0, len(r.GetPolicies()))
		for n := range r.GetPolicies() {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			policy := n
			if m := policyNameRE.FindStringSubmatch(n); m != nil {
				policy = m[2] + "." + m[1]
			}
			key := action + "|" + policy + "|" + strconv.FormatBool(dry)
			row := rows[key]
			if row == nil {
				row = &authzRow{action: action, policy: policy, dryRun: dry, chains: map[string]bool{}}
				rows[key] = row
				order = append(order, key)
			}
			row.chains[chain] = true
			detail := n + ": " + describePolicy(r.GetPolicies()[n])
			if !containsStr(row.detail, detail) {
				row.detail = append(row.detail, detail)
				row.rules++
			}
		}
	}
	rbacAction := func(r *rbacv3.RBAC) string {
		switch r.GetAction() {
		case rbacv3.RBAC_DENY:
			return "DENY"
		case rbacv3.RBAC_LOG:
			return "AUDIT"
		}
		return "ALLOW"
	}
	var chains int
	for _, c := range dump.GetConfigs() {
		ld := &adminv3.ListenersConfigDump{}
		if c.UnmarshalTo(ld) != nil {
			continue
		}
		for _, dl := range ld.GetDynamicListeners() {
			l, ok := unpack(dl.GetActiveState().GetListener(), &listenerv3.Listener{})
			if !ok {
				continue
			}
			fcs := append([]*listenerv3.FilterChain(nil), l.GetFilterChains()...)
			if l.GetDefaultFilterChain() != nil {
				fcs = append(fcs, l.GetDefaultFilterChain())
			}
			for _, fc := range fcs {
				chain := l.GetName() + "[" + fc.GetName() + "]"
				seen := false
				for _, f := range fc.GetFilters() {
					if r, ok := unpack(f.GetTypedConfig(), &rbactcpv3.RBAC{}); ok {
						seen = true
						if r.GetRules() != nil {
							add(chain, rbacAction(r.GetRules()), r.GetRules(), false)
						}
						if r.GetShadowRules() != nil {
							add(chain, rbacAction(r.GetShadowRules()), r.GetShadowRules(), true)
						}
					}
					h, ok := unpack(f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
					if !ok {
						continue
					}
					for _, hf := range h.GetHttpFilters() {
						if j, ok := unpack(hf.GetTypedConfig(), &jwtv3.JwtAuthentication{}); ok {
							seen = true
							for _, p := range j.GetProviders() {
								issuers[p.GetIssuer()] = true
							}
						}
						if r, ok := unpack(hf.GetTypedConfig(), &rbachttpv3.RBAC{}); ok {
							seen = true
							if r.GetRules() != nil {
								add(chain, rbacAction(r.GetRules()), r.GetRules(), false)
							}
							if s := r.GetShadowRules(); s != nil {
								if strings.HasPrefix(r.GetShadowRulesStatPrefix(), "istio_ext_authz") {
									add(chain, "CUSTOM", s, false)
								} else {
									add(chain, rbacAction(s), s, true)
								}
							}
						}
						if e, ok := unpack(hf.GetTypedConfig(), &extauthzv3.ExtAuthz{}); ok {
							seen = true
							_ = e
						}
					}
				}
				if seen {
					chains++
				}
			}
		}
	}
	if len(issuers) > 0 {
		var is []string
		for i := range issuers {
			is = append(is, i)
		}
		sort.Strings(is)
		fmt.Fprintf(w, "Request authentication (JWT issuers): %s\n\n", strings.Join(is, ", "))
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "No authorization policies apply: every request is allowed.")
		return nil
	}
	rank := map[string]int{"CUSTOM": 0, "DENY": 1, "ALLOW": 2, "AUDIT": 3}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := rows[order[i]], rows[order[j]]
		if rank[a.action] != rank[b.action] {
			return rank[a.action] < rank[b.action]
		}
		return a.policy < b.policy
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tAuthorizationPolicy\tRULES\tDRY-RUN\tCHAINS")
	for _, k := range order {
		r := rows[k]
		dry := "-"
		if r.dryRun {
			dry = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", r.action, r.policy, r.rules, dry, len(r.chains))
	}
	tw.Flush()
	hasAllow := false
	for _, r := range rows {
		hasAllow = hasAllow || (r.action == "ALLOW" && !r.dryRun)
	}
	if hasAllow {
		fmt.Fprintln(w, "\nAn ALLOW policy applies: requests no ALLOW rule matches are denied.")
	}
	if verbose {
		for _, k := range order {
			r := rows[k]
			fmt.Fprintf(w, "\n%s %s:\n", r.action, r.policy)
			for _, d := range r.detail {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
	fmt.Fprintf(w, "\n(%d filter chains with authentication or authorization)\n", chains)
	return nil
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// describePolicy renders a policy as "to (…) from (…)".
func describePolicy(p *rbacv3.Policy) string {
	var to, from []string
	for _, pm := range p.GetPermissions() {
		to = append(to, describePerm(pm))
	}
	for _, pr := range p.GetPrincipals() {
		from = append(from, describePrincipal(pr))
	}
	return "to " + strings.Join(to, " | ") + "; from " + strings.Join(from, " | ")
}

func join(parts []string, op string) string {
	var keep []string
	for _, p := range parts {
		if p != "any" || op == " or " {
			keep = append(keep, p)
		}
	}
	switch len(keep) {
	case 0:
		return "any"
	case 1:
		return keep[0]
	}
	return "(" + strings.Join(keep, op) + ")"
}

func describePerm(p *rbacv3.Permission) string {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return "any"
	case *rbacv3.Permission_AndRules:
		var ps []string
		for _, c := range r.AndRules.GetRules() {
			ps = append(ps, describePerm(c))
		}
		return join(ps, " and ")
	case *rbacv3.Permission_OrRules:
		var ps []string
		for _, c := range r.OrRules.GetRules() {
			ps = append(ps, describePerm(c))
		}
		return join(ps, " or ")
	case *rbacv3.Permission_NotRule:
		if _, any := r.NotRule.GetRule().(*rbacv3.Permission_Any); any {
			return "nothing"
		}
		return "not " + describePerm(r.NotRule)
	case *rbacv3.Permission_Header:
		return headerDesc(r.Header.GetName(), r.Header.GetStringMatch(), r.Header.GetPresentMatch())
	case *rbacv3.Permission_UrlPath:
		return "path " + strDesc(r.UrlPath.GetPath())
	case *rbacv3.Permission_UriTemplate:
		return "path template"
	case *rbacv3.Permission_DestinationPort:
		return "port " + strconv.Itoa(int(r.DestinationPort))
	case *rbacv3.Permission_DestinationIp:
		return "destination.ip " + r.DestinationIp.GetAddressPrefix() + "/" + strconv.Itoa(int(r.DestinationIp.GetPrefixLen().GetValue()))
	case *rbacv3.Permission_RequestedServerName:
		return "sni " + strDesc(r.RequestedServerName)
	case *rbacv3.Permission_Metadata:
		return "metadata " + metaDesc(r.Metadata)
	}
	return fmt.Sprintf("%T", p.GetRule())
}

func describePrincipal(p *rbacv3.Principal) string {
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return "any"
	case *rbacv3.Principal_AndIds:
		var ps []string
		for _, c := range r.AndIds.GetIds() {
			ps = append(ps, describePrincipal(c))
		}
		return join(ps, " and ")
	case *rbacv3.Principal_OrIds:
		var ps []string
		for _, c := range r.OrIds.GetIds() {
			ps = append(ps, describePrincipal(c))
		}
		return join(ps, " or ")
	case *rbacv3.Principal_NotId:
		if _, any := r.NotId.GetIdentifier().(*rbacv3.Principal_Any); any {
			return "nobody"
		}
		return "not " + describePrincipal(r.NotId)
	case *rbacv3.Principal_Authenticated_:
		if r.Authenticated.GetPrincipalName() == nil {
			return "any authenticated peer"
		}
		return "peer " + strDesc(r.Authenticated.GetPrincipalName())
	case *rbacv3.Principal_DirectRemoteIp:
		return "source.ip " + r.DirectRemoteIp.GetAddressPrefix() + "/" + strconv.Itoa(int(r.DirectRemoteIp.GetPrefixLen().GetValue()))
	case *rbacv3.Principal_RemoteIp:
		return "remote.ip " + r.RemoteIp.GetAddressPrefix() + "/" + strconv.Itoa(int(r.RemoteIp.GetPrefixLen().GetValue()))
	case *rbacv3.Principal_Header:
		return headerDesc(r.Header.GetName(), r.Header.GetStringMatch(), r.Header.GetPresentMatch())
	case *rbacv3.Principal_Metadata:
		return metaDesc(r.Metadata)
	}
	return fmt.Sprintf("%T", p.GetIdentifier())
}

func headerDesc(name string, m *matcherv3.StringMatcher, present bool) string {
	switch name {
	case ":method":
		return "method " + strDesc(m)
	case ":authority":
		return "host " + strDesc(m)
	}
	if m == nil && present {
		return "header " + name + " present"
	}
	return "header " + name + " " + strDesc(m)
}

func strDesc(m *matcherv3.StringMatcher) string {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return "= " + strconv.Quote(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return "starts with " + strconv.Quote(p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return "ends with " + strconv.Quote(p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		return "contains " + strconv.Quote(p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		if p.SafeRegex.GetRegex() == ".+" {
			return "present"
		}
		return "~ /" + p.SafeRegex.GetRegex() + "/"
	}
	return "?"
}

func metaDesc(m *matcherv3.MetadataMatcher) string {
	var keys []string
	for _, s := range m.GetPath() {
		keys = append(keys, s.GetKey())
	}
	name := m.GetFilter() + "[" + strings.Join(keys, ".") + "]"
	if m.GetFilter() == "envoy.filters.http.jwt_authn" && len(keys) > 1 && keys[0] == "payload" {
		name = "jwt claim " + strings.Join(keys[1:], ".")
	}
	var vals []string
	var walk func(v *matcherv3.ValueMatcher)
	walk = func(v *matcherv3.ValueMatcher) {
		switch p := v.GetMatchPattern().(type) {
		case *matcherv3.ValueMatcher_StringMatch:
			d := strDesc(p.StringMatch)
			if !containsStr(vals, d) {
				vals = append(vals, d)
			}
		case *matcherv3.ValueMatcher_ListMatch:
			walk(p.ListMatch.GetOneOf())
		case *matcherv3.ValueMatcher_OrMatch:
			for _, c := range p.OrMatch.GetValueMatchers() {
				walk(c)
			}
		case *matcherv3.ValueMatcher_PresentMatch:
			vals = append(vals, "present")
		}
	}
	walk(m.GetValue())
	s := name + " " + strings.Join(vals, " or ")
	if m.GetInvert() {
		s = "not " + s
	}
	return s
}
