package authz

import (
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

const (
	sleepID = "spiffe://cluster.local/ns/foo/sa/sleep"
	otherID = "spiffe://other.td/ns/bar/sa/other"
)

// TestConditions covers every source, operation and when key Istio 1.31
// supports (request.auth.* with a verified JWT are in jwt_test.go): an
// ALLOW policy with the field must admit the matching request and refuse
// the other, since an ALLOW policy makes the workload deny by default.
func TestConditions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rule      string
		yes, no   call
		yes2, no2 *call
	}{
		{"principals", `from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}]`,
			call{spiffe: sleepID}, call{spiffe: otherID}, nil, &call{}},
		{"principals wildcard suffix", `from: [{source: {principals: ["*/sa/sleep"]}}]`,
			call{spiffe: sleepID}, call{spiffe: "spiffe://cluster.local/ns/foo/sa/sleepy"}, nil, nil},
		{"principals presence", `from: [{source: {principals: ["*"]}}]`, call{spiffe: otherID}, call{}, nil, nil},
		{"notPrincipals", `from: [{source: {notPrincipals: ["cluster.local/ns/foo/sa/sleep"]}}]`,
			call{spiffe: otherID}, call{spiffe: sleepID}, &call{}, nil},
		{"namespaces", `from: [{source: {namespaces: ["foo"]}}]`, call{spiffe: sleepID}, call{spiffe: otherID}, nil, &call{}},
		{"namespaces wildcard", `from: [{source: {namespaces: ["f*"]}}]`, call{spiffe: sleepID}, call{spiffe: otherID}, nil, nil},
		{"notNamespaces", `from: [{source: {notNamespaces: ["foo"]}}]`, call{spiffe: otherID}, call{spiffe: sleepID}, nil, nil},
		{"serviceAccounts", `from: [{source: {serviceAccounts: ["foo/sleep"]}}]`, call{spiffe: sleepID}, call{spiffe: "spiffe://cluster.local/ns/foo/sa/sleep2"}, nil, nil},
		{"serviceAccounts default namespace", `from: [{source: {serviceAccounts: ["sleep"]}}]`,
			call{spiffe: "spiffe://cluster.local/ns/default/sa/sleep"}, call{spiffe: sleepID}, nil, nil},
		{"trustDomains", `from: [{source: {trustDomains: ["cluster.local"]}}]`, call{spiffe: sleepID}, call{spiffe: otherID}, nil, nil},
		{"trustDomains wildcard", `from: [{source: {trustDomains: ["other.*"]}}]`, call{spiffe: otherID}, call{spiffe: sleepID}, nil, nil},
		{"ipBlocks", `from: [{source: {ipBlocks: ["10.1.0.0/16"]}}]`, call{peer: "10.1.2.3:1"}, call{peer: "10.2.0.1:1"}, nil, nil},
		{"ipBlocks single address", `from: [{source: {ipBlocks: ["10.1.2.3"]}}]`, call{peer: "10.1.2.3:1"}, call{peer: "10.1.2.4:1"}, nil, nil},
		{"notIpBlocks", `from: [{source: {notIpBlocks: ["10.1.0.0/16"]}}]`, call{peer: "10.2.0.1:1"}, call{peer: "10.1.2.3:1"}, nil, nil},
		{"remoteIpBlocks from x-forwarded-for", `from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]`,
			call{header: []string{"X-Forwarded-For: 203.0.113.7"}}, call{header: []string{"X-Forwarded-For: 198.51.100.7"}}, nil, &call{}},
		{"notRemoteIpBlocks", `from: [{source: {notRemoteIpBlocks: ["203.0.113.0/24"]}}]`,
			call{}, call{header: []string{"X-Forwarded-For: 203.0.113.7"}}, nil, nil},
		{"hosts", `to: [{operation: {hosts: ["httpbin.example.com"]}}]`, call{host: "HTTPBIN.example.com"}, call{host: "evil.example.com"}, nil, nil},
		{"hosts suffix", `to: [{operation: {hosts: ["*.example.com"]}}]`, call{host: "a.example.com"}, call{host: "example.org"}, nil, nil},
		{"notHosts", `to: [{operation: {notHosts: ["evil.example.com"]}}]`, call{host: "a.example.com"}, call{host: "evil.example.com"}, nil, nil},
		{"ports", `to: [{operation: {ports: ["8080"]}}]`, call{}, call{dst: workloadIP + ":9090"}, nil, nil},
		{"notPorts", `to: [{operation: {notPorts: ["9090"]}}]`, call{}, call{dst: workloadIP + ":9090"}, nil, nil},
		{"methods", `to: [{operation: {methods: ["GET", "HEAD"]}}]`, call{method: "HEAD"}, call{method: "POST"}, nil, nil},
		{"notMethods", `to: [{operation: {notMethods: ["DELETE"]}}]`, call{method: "PUT"}, call{method: "DELETE"}, nil, nil},
		{"paths exact", `to: [{operation: {paths: ["/headers"]}}]`, call{target: "/headers?x=1"}, call{target: "/headers/x"}, nil, nil},
		{"paths prefix", `to: [{operation: {paths: ["/api/*"]}}]`, call{target: "/api/v1"}, call{target: "/apiv1"}, nil, nil},
		{"paths suffix", `to: [{operation: {paths: ["*.png"]}}]`, call{target: "/img/a.png"}, call{target: "/img/a.png.txt"}, nil, nil},
		{"paths presence", `to: [{operation: {paths: ["*"], methods: ["GET"]}}]`, call{target: "/x"}, call{target: "/x", method: "OPTIONS"}, nil, nil},
		{"paths template", `to: [{operation: {paths: ["/store/{*}/items/{**}"]}}]`,
			call{target: "/store/1/items/a/b"}, call{target: "/store/1/2/items/a"}, nil, nil},
		{"notPaths", `to: [{operation: {notPaths: ["/admin/*"]}}]`, call{target: "/x"}, call{target: "/admin/x"}, nil, nil},
		{"when request.headers", `when: [{key: "request.headers[x-token]", values: ["admin"]}]`,
			call{header: []string{"x-token: admin"}}, call{header: []string{"x-token: user"}}, nil, &call{}},
		{"when request.headers presence", `when: [{key: "request.headers[x-token]", values: ["*"]}]`,
			call{header: []string{"x-token: any"}}, call{}, nil, nil},
		{"when request.headers notValues", `when: [{key: "request.headers[user-agent]", notValues: ["evil*"]}]`,
			call{header: []string{"User-Agent: curl/8"}}, call{header: []string{"User-Agent: evilbot"}}, nil, nil},
		{"when source.ip", `when: [{key: source.ip, values: ["10.1.0.0/16"]}]`, call{peer: "10.1.0.9:1"}, call{peer: "10.3.0.9:1"}, nil, nil},
		{"when source.ip ignores x-forwarded-for", `when: [{key: source.ip, values: ["10.1.0.0/16"]}]`,
			call{peer: "10.1.0.9:1", header: []string{"X-Forwarded-For: 8.8.8.8"}}, call{peer: "10.3.0.9:1", header: []string{"X-Forwarded-For: 10.1.0.1"}}, nil, nil},
		{"when remote.ip", `when: [{key: remote.ip, values: ["203.0.113.0/24"]}]`,
			call{header: []string{"X-Forwarded-For: 203.0.113.1"}}, call{header: []string{"X-Forwarded-For: 198.51.100.1"}}, nil, nil},
		{"when source.namespace", `when: [{key: source.namespace, values: ["foo"]}]`, call{spiffe: sleepID}, call{spiffe: otherID}, nil, nil},
		{"when source.principal", `when: [{key: source.principal, values: ["cluster.local/ns/foo/sa/sleep"]}]`, call{spiffe: sleepID}, call{spiffe: otherID}, nil, nil},
		{"when source.serviceAccount", `when: [{key: source.serviceAccount, values: ["foo/sleep"]}]`, call{spiffe: sleepID}, call{spiffe: otherID}, nil, nil},
		{"when source.trustDomain", `when: [{key: source.trustDomain, values: ["other.td"]}]`, call{spiffe: otherID}, call{spiffe: sleepID}, nil, nil},
		{"when destination.ip", `when: [{key: destination.ip, values: ["198.18.0.0/24"]}]`, call{}, call{dst: "198.18.1.10:8080"}, nil, nil},
		{"when destination.port", `when: [{key: destination.port, values: ["8080"]}]`, call{}, call{dst: workloadIP + ":8081"}, nil, nil},
		{"when destination.port notValues", `when: [{key: destination.port, notValues: ["8080"]}]`, call{dst: workloadIP + ":8081"}, call{}, nil, nil},
		{"when connection.sni", `when: [{key: connection.sni, values: ["*.svc.cluster.local"]}]`,
			call{sni: "outbound_.8080_._.httpbin.default.svc.cluster.local"}, call{sni: "x.example.com"}, nil, &call{}},
		{"combined from/to/when (AND), several from (OR)", `
from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}, {source: {ipBlocks: ["10.9.0.0/16"]}}]
to: [{operation: {methods: ["GET"], paths: ["/info*"]}}]
when: [{key: "request.headers[version]", values: ["v1", "v2"]}]`,
			call{spiffe: sleepID, target: "/info", header: []string{"version: v2"}},
			call{spiffe: sleepID, target: "/info", method: "POST", header: []string{"version: v2"}},
			&call{peer: "10.9.1.1:1", target: "/information", header: []string{"version: v1"}},
			&call{spiffe: sleepID, target: "/info", header: []string{"version: v3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sidecar(t, nil, policy(t, "p", "action: ALLOW\nrules:\n- "+indent(tc.rule)))
			check := func(c call, want bool) {
				t.Helper()
				if c.target == "" {
					c.target = "/get"
				}
				if got := allowed(t, m, c); got != want {
					t.Errorf("%+v: allowed %v, want %v", c, got, want)
				}
			}
			check(tc.yes, true)
			check(tc.no, false)
			if tc.yes2 != nil {
				check(*tc.yes2, true)
			}
			if tc.no2 != nil {
				check(*tc.no2, false)
			}
		})
	}
}

// indent continues a YAML rule under "- ".
func indent(s string) string {
	out := ""
	first := true
	for _, l := range splitLines(s) {
		if l == "" {
			continue
		}
		if first {
			out += l + "\n"
			first = false
			continue
		}
		out += "  " + l + "\n"
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestActions: Istio's evaluation order and defaults.
func TestActions(t *testing.T) {
	get := call{target: "/get"}
	admin := call{target: "/admin"}
	for _, tc := range []struct {
		name     string
		pols     []string // name|annotation|spec
		get, adm bool
	}{
		{"no policy allows", nil, true, true},
		{"allow-nothing ({})", []string{"allow-nothing||{}"}, false, false},
		{"allow-all (rules: [{}])", []string{"allow-all||rules: [{}]"}, true, true},
		{"ALLOW selecting the workload denies the rest", []string{"p||rules: [{to: [{operation: {paths: [/get]}}]}]"}, true, false},
		{"DENY before ALLOW", []string{"a||rules: [{}]", "d||{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}"}, true, false},
		{"deny-all DENY rules: [{}]", []string{"d||{action: DENY, rules: [{}]}"}, false, false},
		{"DENY with no rules matches nothing", []string{"d||{action: DENY}"}, true, true},
		{"dry-run DENY is not enforced", []string{"d|true|{action: DENY, rules: [{}]}"}, true, true},
		{"dry-run ALLOW is not enforced", []string{"a|true|{rules: [{to: [{operation: {paths: [/get]}}]}]}"}, true, true},
		{"dry-run beside enforced", []string{"d|true|{action: DENY, rules: [{}]}", "e||{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}"}, true, false},
		{"AUDIT never denies", []string{"a||{action: AUDIT, rules: [{}]}"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps = policiesFrom(t, tc.pols)
			m := sidecar(t, nil, ps...)
			if got := allowed(t, m, get); got != tc.get {
				t.Errorf("GET /get allowed %v, want %v", got, tc.get)
			}
			if got := allowed(t, m, admin); got != tc.adm {
				t.Errorf("GET /admin allowed %v, want %v", got, tc.adm)
			}
		})
	}
}

// TestScope: which policies select the workload.
func TestScope(t *testing.T) {
	deny := "{action: DENY, rules: [{}]}"
	for _, tc := range []struct {
		name string
		ns   string
		spec string
		want bool // the deny-all applies
	}{
		{"namespace-wide", "default", deny, true},
		{"other namespace", "other", deny, false},
		{"root namespace is mesh-wide", "istio-system", deny, true},
		{"selector matches", "default", "{selector: {matchLabels: {app: httpbin}}, action: DENY, rules: [{}]}", true},
		{"selector does not match", "default", "{selector: {matchLabels: {app: other}}, action: DENY, rules: [{}]}", false},
		{"root namespace selector", "istio-system", "{selector: {matchLabels: {app: httpbin}}, action: DENY, rules: [{}]}", true},
		{"targetRef never selects a sidecar", "default", "{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: httpbin}], action: DENY, rules: [{}]}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy(t, "p", tc.spec)
			p.Namespace = tc.ns
			m := sidecar(t, nil, p)
			if got := !allowed(t, m, call{target: "/get"}); got != tc.want {
				t.Errorf("denied %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTCPOnlyFields: Istio's rules for HTTP-only fields on a TCP chain are
// in the translate golden test (authz/tcp-echo.json); here the HTTP side:
// a policy with a bad value in an ALLOW rule drops the rule (narrower).
func TestInvalidValue(t *testing.T) {
	m := sidecar(t, nil, policy(t, "p", `rules: [{to: [{operation: {ports: ["http"]}}]}]`))
	if allowed(t, m, call{target: "/get"}) {
		t.Error("an ALLOW rule with an invalid port must be dropped, leaving deny-by-default")
	}
	m = sidecar(t, nil, policy(t, "p", `{action: DENY, rules: [{to: [{operation: {ports: ["http"], paths: ["/admin"]}}]}]}`))
	if allowed(t, m, call{target: "/admin"}) || !allowed(t, m, call{target: "/get"}) {
		t.Error("a DENY rule with an invalid port keeps its other fields (wider)")
	}
	_ = meshv1alpha1.MeshConfig{}
}

func policiesFrom(t *testing.T, specs []string) []*securityv1AP {
	var out []*securityv1AP
	for _, s := range specs {
		parts := splitN(s, "|", 3)
		var p *securityv1AP
		if parts[1] != "" {
			p = policy(t, parts[0], parts[2], "istio.io/dry-run", parts[1])
		} else {
			p = policy(t, parts[0], parts[2])
		}
		out = append(out, p)
	}
	return out
}
