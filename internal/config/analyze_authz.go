package config

import (
	"fmt"
	"strings"

	security "istio.io/api/security/v1beta1"
)

// Weft's own authorization checks (Istio has no message for them).
var (
	msgPrincipalsWithoutMTLS = msgType{"WFT0030", "PrincipalsWithoutMutualTLS", LevelWarning,
		"This ALLOW policy matches peer identities (%s) but mutual TLS is off for %s (%s): no request carries a peer identity, so the rule never matches."}
	msgRequestPrincipalWithoutRA = msgType{"WFT0031", "RequestPrincipalWithoutRequestAuthentication", LevelWarning,
		"This policy matches JWT attributes (%s) but no RequestAuthentication selects the workloads it applies to: no request has a verified token, so %s."}
)

// peerFields are the source fields and when keys that need a peer
// identity (mutual TLS).
func peerFields(rule *security.Rule) []string {
	var out []string
	for _, f := range rule.GetFrom() {
		s := f.GetSource()
		for _, x := range []struct {
			n string
			v []string
		}{{"principals", s.GetPrincipals()}, {"namespaces", s.GetNamespaces()}, {"serviceAccounts", s.GetServiceAccounts()},
			{"trustDomains", s.GetTrustDomains()}} {
			if len(x.v) > 0 {
				out = append(out, x.n)
			}
		}
	}
	for _, c := range rule.GetWhen() {
		switch c.GetKey() {
		case "source.principal", "source.namespace", "source.serviceAccount", "source.trustDomain":
			if len(c.GetValues()) > 0 {
				out = append(out, c.GetKey())
			}
		}
	}
	return out
}

// jwtFields are the fields that need a verified JWT.
func jwtFields(rule *security.Rule) []string {
	var out []string
	for _, f := range rule.GetFrom() {
		s := f.GetSource()
		if len(s.GetRequestPrincipals()) > 0 {
			out = append(out, "requestPrincipals")
		}
		if len(s.GetNotRequestPrincipals()) > 0 {
			out = append(out, "notRequestPrincipals")
		}
	}
	for _, c := range rule.GetWhen() {
		if strings.HasPrefix(c.GetKey(), "request.auth.") {
			out = append(out, c.GetKey())
		}
	}
	return out
}

// analyzeAuthzIdentity reports ALLOW policies on peer identities where
// mutual TLS is off, and policies on JWT attributes where no
// RequestAuthentication applies.
func analyzeAuthzIdentity(ix *index) []*Message {
	var out []*Message
	for _, r := range ix.byKind[KindAuthorizationPolicy] {
		ap := r.Spec.(*security.AuthorizationPolicy)
		sel := ap.GetSelector().GetMatchLabels()
		var peer, jwt []string
		for _, rule := range ap.GetRules() {
			peer = append(peer, peerFields(rule)...)
			jwt = append(jwt, jwtFields(rule)...)
		}
		if len(peer) > 0 && ap.GetAction() == security.AuthorizationPolicy_ALLOW {
			if why, scope := ix.mtlsOff(r.Namespace, sel); why != "" {
				out = append(out, newMessage(msgPrincipalsWithoutMTLS, r, "spec.rules", strings.Join(dedup(peer), ", "), scope, why))
			}
		}
		if len(jwt) > 0 && !ix.requestAuthnCovers(r.Namespace, sel) {
			effect := "the rule never matches"
			if ap.GetAction() == security.AuthorizationPolicy_ALLOW {
				effect = "requests matching only through it are denied"
			}
			out = append(out, newMessage(msgRequestPrincipalWithoutRA, r, "spec.rules", strings.Join(dedup(jwt), ", "), effect))
		}
	}
	return out
}

// mtlsOff says why mutual TLS is off for the workloads a policy selects
// ("" when it may be on).
func (ix *index) mtlsOff(ns string, sel map[string]string) (why, scope string) {
	scope = "namespace " + ns
	if len(sel) > 0 {
		scope = fmt.Sprintf("the workloads %s in %s", labelString(sel), ns)
	}
	var workload, namespace, mesh *Resource
	for _, r := range ix.byKind[KindPeerAuthentication] {
		pa := r.Spec.(*security.PeerAuthentication)
		psel := pa.GetSelector().GetMatchLabels()
		switch {
		case r.Namespace == ns && len(psel) > 0 && len(sel) > 0 && selects(psel, sel):
			workload = r
		case r.Namespace == ns && len(psel) == 0:
			namespace = r
		case r.Namespace == ix.rootNS && len(psel) == 0:
			mesh = r
		}
	}
	for _, r := range []*Resource{workload, namespace, mesh} {
		if r == nil {
			continue
		}
		switch r.Spec.(*security.PeerAuthentication).GetMtls().GetMode() {
		case security.PeerAuthentication_MutualTLS_DISABLE:
			return "PeerAuthentication " + r.Namespace + "/" + r.Name + " sets DISABLE", scope
		case security.PeerAuthentication_MutualTLS_UNSET:
			continue
		}
		break
	}
	if !ix.autoMTLS {
		return "MeshConfig enableAutoMtls is false", scope
	}
	return "", scope
}

// requestAuthnCovers reports whether a RequestAuthentication applies to
// the workloads a policy in ns with selector sel applies to.
func (ix *index) requestAuthnCovers(ns string, sel map[string]string) bool {
	for _, r := range ix.byKind[KindRequestAuthentication] {
		ra := r.Spec.(*security.RequestAuthentication)
		if r.Namespace != ns && r.Namespace != ix.rootNS {
			continue
		}
		rsel := ra.GetSelector().GetMatchLabels()
		if len(rsel) == 0 || (len(sel) > 0 && selects(rsel, sel)) {
			return true
		}
	}
	return false
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
