package translate

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// CredentialProblems explains every credentialName the proxy cannot be
// served, and what that costs: a Gateway server whose Secret is missing (or
// not in the gateway's own namespace, or lacks the client CA MUTUAL needs)
// loses only its own TLS filter chain; a DestinationRule's credentialName
// leaves its cluster failing TLS. The lookup is the one translation uses,
// keyed by the proxy's verified namespace, so the answer is exactly what
// the proxy gets. A Secret that failed validation never reaches the
// Snapshot, so it reads as missing here; its load error names the file.
// Messages are sorted and stable across calls (the control plane logs a
// change once).
func CredentialProblems(snap *model.Snapshot, p *model.Proxy) []string {
	if snap == nil || p == nil || p.Meta == nil || p.IsGRPC() {
		return nil
	}
	if !namesCredentials(snap) {
		return nil // the common case, without building anything
	}
	b := newBuilder(snap, p)
	seen := map[string]bool{}
	note := func(msg string) { seen[msg] = true }
	if p.Meta.Type == node.Router {
		for _, gw := range b.routerGateways() {
			for i, s := range gw.Spec.Servers {
				t := s.GetTls()
				if t.GetCredentialName() == "" || s.GetPort() == nil {
					continue
				}
				mode := t.GetMode()
				if mode != networking.ServerTLSSettings_SIMPLE && mode != networking.ServerTLSSettings_MUTUAL && mode != networking.ServerTLSSettings_OPTIONAL_MUTUAL {
					continue
				}
				where := fmt.Sprintf("Gateway %s/%s server %d (port %d, hosts %s)", gw.Namespace, gw.Name, i, s.Port.Number, strings.Join(s.Hosts, ","))
				why := b.credentialMissing(t.CredentialName, false)
				if why == "" && mode != networking.ServerTLSSettings_SIMPLE {
					why = b.credentialMissing(t.CredentialName, true)
				}
				if why != "" {
					note(where + ": " + why + "; this server's TLS filter chain is not served (its handshakes fail), the gateway's other servers are unaffected")
				}
			}
		}
	}
	b.noteCredential = func(cluster, credential string, ca bool) {
		what := "client certificate"
		if ca {
			what = "CA to verify the server"
		}
		note(fmt.Sprintf("cluster %s: DestinationRule tls credentialName %q: %s (the %s); the cluster's TLS fails closed", cluster, credential, b.credentialMissing(credential, ca), what))
	}
	b.buildClusters()
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// credentialMissing says why lookupSecret finds nothing for the proxy
// ("" when it finds the credential).
func (b *builder) credentialMissing(credential string, ca bool) string {
	if b.lookupSecret(credential, ca) != nil {
		return ""
	}
	ns, ok := b.credentialNamespace()
	if !ok {
		return fmt.Sprintf("credentialName %q: the proxy proved no identity on its xDS connection (plaintext port), so it is served no credentials", credential)
	}
	s := b.snap.Secrets[ns+"/"+credential]
	switch {
	case s != nil && !ca && (len(s.CertChain) == 0 || len(s.PrivateKey) == 0):
		return fmt.Sprintf("credentialName %q: Secret %s/%s has no certificate and key (tls.crt/tls.key or cert/key)", credential, ns, credential)
	case s != nil && ca:
		return fmt.Sprintf("credentialName %q: neither Secret %s/%s nor %s/%s-cacert holds a CA certificate (ca.crt or cacert)", credential, ns, credential, ns, credential)
	}
	var elsewhere []string
	for _, o := range b.snap.Secrets {
		if o != nil && o.Name == credential && o.Namespace != ns {
			elsewhere = append(elsewhere, o.Namespace)
		}
	}
	if len(elsewhere) > 0 {
		sort.Strings(elsewhere)
		return fmt.Sprintf("credentialName %q: Secret not found in namespace %s; it exists in %s, but a proxy is served credentials only from its own namespace", credential, ns, strings.Join(elsewhere, ", "))
	}
	return fmt.Sprintf("credentialName %q: Secret %s/%s not found (or it failed validation: see the control plane's log and weft analyze)", credential, ns, credential)
}

// namesCredentials reports whether any Gateway or DestinationRule in snap
// names a credentialName.
func namesCredentials(snap *model.Snapshot) bool {
	for _, gw := range snap.Gateways {
		if gw == nil {
			continue
		}
		for _, s := range gw.Spec.GetServers() {
			if s.GetTls().GetCredentialName() != "" {
				return true
			}
		}
	}
	policyNames := func(tp *networking.TrafficPolicy) bool {
		if tp.GetTls().GetCredentialName() != "" {
			return true
		}
		for _, pl := range tp.GetPortLevelSettings() {
			if pl.GetTls().GetCredentialName() != "" {
				return true
			}
		}
		return false
	}
	for _, dr := range snap.DestinationRules {
		if dr == nil {
			continue
		}
		if policyNames(dr.Spec.GetTrafficPolicy()) {
			return true
		}
		for _, ss := range dr.Spec.GetSubsets() {
			if policyNames(ss.GetTrafficPolicy()) {
				return true
			}
		}
	}
	return false
}
