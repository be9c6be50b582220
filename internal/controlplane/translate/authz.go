package translate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"istio.io/api/annotation"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	security "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/weftmesh/weft/internal/node"
)

// Authorization (AuthorizationPolicy → Envoy RBAC), as Istio builds it
// (pilot/pkg/security/authz/builder): per action one RBAC filter, AUDIT,
// DENY then ALLOW (CUSTOM's ext_authz before them), on the HTTP connection
// managers of the proxy's inbound chains (gateways: every chain), and the
// network RBAC filter in front of tcp_proxy on TCP chains.

const (
	filterRBAC       = "envoy.filters.http.rbac"
	filterNetRBAC    = "envoy.filters.network.rbac"
	gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

	dryRunAllowPrefix = "istio_dry_run_allow_"
	dryRunDenyPrefix  = "istio_dry_run_deny_"
)

// authzPolicies are the policies that apply to the proxy's workload, by
// action, ordered by namespace and name.
type authzPolicies struct {
	custom, deny, allow, audit []*securityv1.AuthorizationPolicy
}

func (a authzPolicies) empty() bool {
	return len(a.custom)+len(a.deny)+len(a.allow)+len(a.audit) == 0
}

// AuthorizationPolicies returns the policies selecting proxy p: those of
// the root namespace (mesh-wide, or whose selector matches), and those of
// the proxy's namespace with no selector or a matching one; a targetRef of
// kind Gateway selects the gateway's pods by Istio's gateway-name label.
func AuthorizationPolicies(pols []*securityv1.AuthorizationPolicy, mesh *meshv1alpha1.MeshConfig, m *node.Meta) []*securityv1.AuthorizationPolicy {
	root := mesh.GetRootNamespace()
	if root == "" {
		root = "istio-system"
	}
	var out []*securityv1.AuthorizationPolicy
	for _, ap := range pols {
		if ap != nil && policyApplies(ap, root, m) {
			out = append(out, ap)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func policyApplies(ap *securityv1.AuthorizationPolicy, root string, m *node.Meta) bool {
	spec := &ap.Spec
	refs := spec.GetTargetRefs()
	if spec.GetTargetRef() != nil {
		refs = append(refs, spec.GetTargetRef())
	}
	if len(refs) > 0 {
		// Sidecars are never selected by targetRef; a Gateway reference
		// selects that gateway's pods in the policy's namespace.
		if ap.Namespace != m.Namespace {
			return false
		}
		for _, r := range refs {
			if r.GetKind() == "Gateway" && r.GetGroup() == "gateway.networking.k8s.io" && m.Labels[gatewayNameLabel] == r.GetName() {
				return true
			}
		}
		return false
	}
	if ap.Namespace != root && ap.Namespace != m.Namespace {
		return false
	}
	sel := spec.GetSelector().GetMatchLabels()
	return len(sel) == 0 || labelsMatch(sel, m.Labels)
}

func (b *builder) authzPolicies() authzPolicies {
	var out authzPolicies
	for _, ap := range AuthorizationPolicies(b.snap.AuthorizationPolicies, b.mesh, b.p.Meta) {
		switch ap.Spec.GetAction() {
		case security.AuthorizationPolicy_ALLOW:
			out.allow = append(out.allow, ap)
		case security.AuthorizationPolicy_DENY:
			out.deny = append(out.deny, ap)
		case security.AuthorizationPolicy_AUDIT:
			out.audit = append(out.audit, ap)
		case security.AuthorizationPolicy_CUSTOM:
			out.custom = append(out.custom, ap)
		}
	}
	return out
}

// dryRun reads Istio's istio.io/dry-run annotation.
func dryRun(ap *securityv1.AuthorizationPolicy) bool {
	v, ok := ap.Annotations[annotation.IoIstioDryRun.Name]
	if !ok {
		return false
	}
	d, _ := strconv.ParseBool(v)
	return d
}

// policyName is Istio's RBAC policy name for rule i.
func policyName(prefix, ns, name string, i int) string {
	return fmt.Sprintf("%sns[%s]-policy[%s]-rule[%d]", prefix, ns, name, i)
}

// neverMatch is the policy of an AuthorizationPolicy with no rules.
func neverMatch() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}},
	}
}

// rbacRules builds the enforced and shadow (dry-run) rules of one action;
// nil when no policy of that kind exists.
func rbacRules(pols []*securityv1.AuthorizationPolicy, action rbacv3.RBAC_Action, forTCP bool, namePrefix string, tds trustBundle) (rules, shadow *rbacv3.RBAC) {
	for _, ap := range pols {
		target := &rules
		if dryRun(ap) {
			target = &shadow
		}
		if *target == nil {
			*target = &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
		}
		g := ruleGen{ns: ap.Namespace, forTCP: forTCP, deny: action != rbacv3.RBAC_ALLOW, tds: tds}
		for i, r := range ap.Spec.GetRules() {
			if r == nil {
				continue
			}
			p, err := g.policy(r)
			if err != nil || p == nil {
				continue // Istio skips the rule (ALLOW: narrower)
			}
			(*target).Policies[policyName(namePrefix, ap.Namespace, ap.Name, i)] = p
		}
		if len(ap.Spec.GetRules()) == 0 {
			(*target).Policies[policyName(namePrefix, ap.Namespace, ap.Name, 0)] = neverMatch()
		}
	}
	return rules, shadow
}

// shadowPrefix is Istio's shadow_rules_stat_prefix. Istio reads the
// action of a possibly nil RBAC, so filters without dry-run policies carry
// the ALLOW prefix too; the shape is kept byte for byte.
func shadowPrefix(shadow *rbacv3.RBAC) string {
	switch shadow.GetAction() {
	case rbacv3.RBAC_ALLOW:
		return dryRunAllowPrefix
	case rbacv3.RBAC_DENY:
		return dryRunDenyPrefix
	}
	return ""
}

// authzHTTPFilters are the HTTP filters for the proxy's policies.
func (b *builder) authzHTTPFilters(pols authzPolicies) []*hcmv3.HttpFilter {
	out := b.customHTTPFilters(pols.custom)
	for _, set := range []struct {
		pols   []*securityv1.AuthorizationPolicy
		action rbacv3.RBAC_Action
	}{{pols.audit, rbacv3.RBAC_LOG}, {pols.deny, rbacv3.RBAC_DENY}, {pols.allow, rbacv3.RBAC_ALLOW}} {
		if len(set.pols) == 0 {
			continue
		}
		rules, shadow := rbacRules(set.pols, set.action, false, "", b.trustBundle())
		cfg := &rbachttpv3.RBAC{Rules: rules, ShadowRules: shadow, ShadowRulesStatPrefix: shadowPrefix(shadow)}
		out = append(out, &hcmv3.HttpFilter{Name: filterRBAC, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}})
	}
	return out
}

// authzNetworkFilters are the network filters for TCP chains.
func (b *builder) authzNetworkFilters(pols authzPolicies) []*listenerv3.Filter {
	out := b.customNetworkFilters(pols.custom)
	for _, set := range []struct {
		pols   []*securityv1.AuthorizationPolicy
		action rbacv3.RBAC_Action
	}{{pols.audit, rbacv3.RBAC_LOG}, {pols.deny, rbacv3.RBAC_DENY}, {pols.allow, rbacv3.RBAC_ALLOW}} {
		if len(set.pols) == 0 {
			continue
		}
		rules, shadow := rbacRules(set.pols, set.action, true, "", b.trustBundle())
		cfg := &rbactcpv3.RBAC{Rules: rules, StatPrefix: "tcp.", ShadowRules: shadow, ShadowRulesStatPrefix: shadowPrefix(shadow)}
		out = append(out, &listenerv3.Filter{Name: filterNetRBAC, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(cfg)}})
	}
	return out
}

// applySecurity adds request authentication, authorization and Istio's
// path normalization to the chains that serve the proxy's workload
// (sidecar: inbound; gateway: all). Run after the listeners are built.
func (b *builder) applySecurity() {
	gateway := b.p.Meta.Type == node.Router
	pols := b.authzPolicies()
	jwt := b.jwtFilter()
	var httpFilters []*hcmv3.HttpFilter
	var netFilters []*listenerv3.Filter
	if !pols.empty() {
		httpFilters = b.authzHTTPFilters(pols)
		netFilters = b.authzNetworkFilters(pols)
	}
	for _, n := range sortedKeys(b.listeners) {
		l := b.listeners[n]
		if n == explicitProxyName {
			continue // outbound
		}
		chains := append([]*listenerv3.FilterChain(nil), l.GetFilterChains()...)
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			if !gateway && !strings.HasPrefix(fc.GetName(), "inbound_") {
				continue
			}
			fs := fc.GetFilters()
			if len(fs) == 0 {
				continue
			}
			last := fs[len(fs)-1]
			switch last.GetName() {
			case hcmFilterName:
				h := &hcmv3.HttpConnectionManager{}
				if last.GetTypedConfig().UnmarshalTo(h) != nil {
					continue
				}
				b.normalization(h)
				if gateway {
					// Istio's gatewayTopology: how many proxies in front of
					// the gateway append to x-forwarded-for, so remote.ip /
					// remoteIpBlocks see the real client.
					if n := b.mesh.GetDefaultConfig().GetGatewayTopology().GetNumTrustedProxies(); n > 0 {
						h.XffNumTrustedHops = n
					}
				}
				var add []*hcmv3.HttpFilter
				if jwt != nil {
					add = append(add, jwt)
				}
				add = append(add, httpFilters...)
				h.HttpFilters = insertHTTPFilters(h.HttpFilters, add)
				last.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(h)}
			case tcpFilterName:
				if len(netFilters) > 0 {
					fc.Filters = append(append([]*listenerv3.Filter(nil), netFilters...), fs...)
				}
			}
		}
	}
}

// insertHTTPFilters puts add after fault (Envoy order: fault, jwt_authn,
// rbac, cors, …, router).
func insertHTTPFilters(hfs, add []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
	if len(add) == 0 {
		return hfs
	}
	at := 0
	for i, f := range hfs {
		if f.GetName() == filterFault {
			at = i + 1
		}
	}
	out := make([]*hcmv3.HttpFilter, 0, len(hfs)+len(add))
	out = append(out, hfs[:at]...)
	out = append(out, add...)
	return append(out, hfs[at:]...)
}

// normalization applies MeshConfig pathNormalization (Istio's
// "Authorization Policy Normalization"): BASE (default) normalizes dot
// segments, MERGE_SLASHES also merges slashes, DECODE_AND_MERGE_SLASHES
// also decodes %2F and %5C, NONE leaves the path alone.
func (b *builder) normalization(h *hcmv3.HttpConnectionManager) {
	switch b.mesh.GetPathNormalization().GetNormalization() {
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE:
		h.NormalizePath = wrapperspb.Bool(false)
		h.MergeSlashes = false
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default: // DEFAULT, BASE
		h.NormalizePath = wrapperspb.Bool(true)
	}
}
