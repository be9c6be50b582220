package config

import (
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// Shared fixtures for analyzer cases.
const (
	svcReviews = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
`
	drReviews = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
---
`
	svcIngress = `apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
---
`
)

func vsRoute(name, hosts, gateways, dest string) string {
	s := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " + name + "}\nspec:\n  hosts: " + hosts + "\n"
	if gateways != "" {
		s += "  gateways: " + gateways + "\n"
	}
	return s + "  http:\n  - route:\n    - destination: " + dest + "\n---\n"
}

func gateway(name, port, hosts string) string {
	return "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: " + name + "}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: " + port + ", name: http, protocol: HTTP}\n    hosts: " + hosts + "\n---\n"
}

func TestAnalyzers(t *testing.T) {
	cases := []struct {
		name, src string
		want      string // substring of one message; "" = no message at all
	}{
		{"clean", svcReviews + drReviews + vsRoute("reviews", "[reviews]", "", "{host: reviews, subset: v1}"), ""},
		{"host not found", vsRoute("reviews", "[reviews]", "", "{host: reviewss}"),
			`Error [IST0101] (VirtualService default/reviews a.yaml:8) Referenced host not found: "reviewss"`},
		{"subset not found", svcReviews + drReviews + vsRoute("reviews", "[reviews]", "", "{host: reviews, subset: v4}"),
			`Referenced host+subset in destinationrule not found: "reviews+v4"`},
		{"subset in FQDN rule", svcReviews + strings.Replace(drReviews, "host: reviews", "host: reviews.default.svc.cluster.local", 1) + vsRoute("reviews", "[reviews]", "", "{host: reviews, subset: v1}"), ""},
		{"port not found", svcReviews + vsRoute("reviews", "[reviews]", "", "{host: reviews, port: {number: 9081}}"),
			`Referenced host:port not found: "reviews:9081"`},
		{"serviceentry host", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [\"*.example.com\"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n---\n" + vsRoute("ext", "[a.example.com]", "", "{host: a.example.com}"), ""},
		{"gateway not found", svcReviews + vsRoute("reviews", "[\"*\"]", "[bogus]", "{host: reviews}"), `Referenced gateway not found: "bogus"`},
		{"gateway in other namespace", svcReviews + strings.Replace(gateway("gw", "80", "[\"*\"]"), "name: gw}", "name: gw, namespace: istio-system}", 1) + vsRoute("reviews", "[\"*\"]", "[istio-system/gw]", "{host: reviews}"), ""},
		{"gateway ref wrong namespace", svcReviews + strings.Replace(gateway("gw", "80", "[\"*\"]"), "name: gw}", "name: gw, namespace: istio-system}", 1) + vsRoute("reviews", "[\"*\"]", "[gw]", "{host: reviews}"), `Referenced gateway not found: "gw"`},
		{"host not in gateway", svcReviews + gateway("gw", "80", "[testing.com]") + vsRoute("reviews", "[wrong.com]", "[gw]", "{host: reviews}"),
			`Warning [IST0132] (VirtualService default/reviews a.yaml:23) one or more host [wrong.com] defined in VirtualService default/reviews not found in Gateway default/gw.`},
		{"gateway namespace-scoped host", svcReviews + gateway("gw", "80", "[\"prod/*\"]") + vsRoute("reviews", "[a.com]", "[gw]", "{host: reviews}"), "IST0132"},
		{"port selector required", "apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo}\nspec:\n  ports: [{name: tcp, port: 9000}, {name: tcp-other, port: 9001}]\n---\n" + gateway("gw", "80", "[\"*\"]") + vsRoute("t", "[\"*\"]", "[gw]", "{host: tcp-echo}"), "Error [IST0112]"},
		{"port selector not needed on mesh", "apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo}\nspec:\n  ports: [{name: tcp, port: 9000}, {name: tcp-other, port: 9001}]\n---\n" + vsRoute("t", "[tcp-echo]", "", "{host: tcp-echo}"), ""},
		{"mesh VS conflict", svcReviews + vsRoute("a", "[reviews]", "", "{host: reviews}") + vsRoute("b", "[reviews.default.svc.cluster.local]", "", "{host: reviews}"),
			"Error [IST0109] (VirtualService default/a a.yaml:13) The VirtualServices default/a,default/b associated with mesh gateway define the same host reviews.default.svc.cluster.local"},
		{"gateway VSs merge", svcReviews + gateway("gw", "80", "[\"*\"]") + vsRoute("a", "[x.com]", "[gw]", "{host: reviews}") + vsRoute("b", "[x.com]", "[gw]", "{host: reviews}"), ""},
		{"private VSs in two namespaces", svcReviews +
			strings.Replace(vsRoute("a", "[reviews.default.svc.cluster.local]", "", "{host: reviews.default.svc.cluster.local}"), "name: a}", "name: a, namespace: one}\n", 1) +
			strings.Replace(strings.Replace(vsRoute("b", "[reviews.default.svc.cluster.local]", "", "{host: reviews.default.svc.cluster.local}"), "name: b}", "name: b, namespace: two}", 1), "spec:\n", "spec:\n  exportTo: [\".\"]\n", 1), ""},
		{"dr host not found", drReviews, `Error [IST0101] (DestinationRule default/reviews a.yaml:5) Referenced host not found: "reviews"`},
		{"subset in two rules", svcReviews + drReviews + strings.Replace(drReviews, "name: reviews}", "name: reviews2}", 1), `Warning [WFT0001] (DestinationRule default/reviews2 a.yaml:24) Subset "v1" of host reviews.default.svc.cluster.local is also defined by DestinationRule default/reviews`},
		{"conflicting gateways", gateway("alpha", "80", "[foo.example.com]") + gateway("beta", "80", "[\"*.example.com\"]"),
			"Error [IST0145] (Gateway default/alpha a.yaml:7) Conflict with gateways default/beta (workload selector istio=ingressgateway, port 80, hosts foo.example.com)."},
		{"gateways on different ports", gateway("alpha", "80", "[foo.example.com]") + gateway("beta", "8080", "[\"*.example.com\"]"), ""},
		{"gateway port not on service", svcIngress + gateway("gw", "9999", "[\"*\"]"), "Warning [IST0162] (Gateway default/gw a.yaml:15) The gateway is listening on a target port (port 9999)"},
		{"gateway target port", svcIngress + gateway("gw", "8080", "[\"*\"]"), ""},
		{"gateway selector without workloads", gateway("gw", "80", "[\"*\"]") + "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm}\nspec: {address: 10.0.0.1, labels: {app: vm}}\n", `Referenced selector not found: "istio=ingressgateway"`},
		{"credentialName missing", "apiVersion: v1\nkind: Secret\nmetadata: {name: other}\ntype: Opaque\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: SIMPLE, credentialName: cred}\n", `Referenced credentialName not found: "cred"`},
		{"DestinationRule credentialName missing", "apiVersion: v1\nkind: Secret\nmetadata: {name: other, namespace: istio-system}\ntype: Opaque\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [ext.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ext}\nspec:\n  host: ext.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, credentialName: client-cred}\n", `Referenced credentialName not found: "client-cred"`},
		{"DestinationRule credentialName in another namespace", "apiVersion: v1\nkind: Secret\nmetadata: {name: client-cred, namespace: istio-system}\ntype: Opaque\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [ext.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ext}\nspec:\n  host: ext.example.com\n  trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-cred}}\n", ""},
		{"credentialName without secrets", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: SIMPLE, credentialName: cred}\n", ""},
		{"sidecars without selector", "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec:\n  egress: [{hosts: [\"./*\"]}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: b}\nspec:\n  egress: [{hosts: [\"./*\"]}]\n", `Error [IST0111] (Sidecar default/a a.yaml:4) The Sidecars [a b] in namespace "default" have no workload selector`},
		{"sidecars select one workload", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm}\nspec: {address: 10.0.0.1, labels: {app: vm}}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec:\n  workloadSelector: {labels: {app: vm}}\n  egress: [{hosts: [\"./*\"]}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: b}\nspec:\n  workloadSelector: {labels: {app: vm}}\n  egress: [{hosts: [\"./*\"]}]\n", `Error [IST0110] (Sidecar default/a a.yaml:10) The Sidecars [a b] in namespace "default" select the same workload pod "vm"`},
		{"policy selects nothing", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm}\nspec: {address: 10.0.0.1, labels: {app: vm}}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: web}}\n", "Warning [IST0127] (AuthorizationPolicy default/p a.yaml:10) No matching workloads for this resource with the following labels: app=web"},
		{"authz unknown namespace", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - when:\n    - key: source.namespace\n      values: [nope, default, \"prod-*\"]\n", `Referenced namespace not found: "nope"`},
		{"deny without rules", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: DENY}\n", "Warning [IST0167] (AuthorizationPolicy default/p a.yaml:4) The policy has no impact: action DENY without rules matches no request."},
		{"allow nothing", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing}\nspec: {}\n", "Info [WFT0002] (AuthorizationPolicy default/allow-nothing a.yaml:4) AuthorizationPolicy with action ALLOW and no rules denies every request to the workloads it selects (every workload in namespace default)."},
		{"allow all", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-all}\nspec:\n  rules: [{}]\n", ""},
		{"principals with mtls disabled", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: DISABLE}}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/default/sa/curl\"]}}]\n",
			"Warning [WFT0030] (AuthorizationPolicy default/p a.yaml:10) This ALLOW policy matches peer identities (principals) but mutual TLS is off for namespace default (PeerAuthentication default/default sets DISABLE)"},
		{"principals with mtls on", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/default/sa/curl\"]}}]\n", ""},
		{"principals with auto mtls off", "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {enableAutoMtls: false}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - when: [{key: source.namespace, values: [default]}]\n", "MeshConfig enableAutoMtls is false"},
		{"requestPrincipals without RequestAuthentication", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n",
			"Warning [WFT0031] (AuthorizationPolicy default/p a.yaml:6) This policy matches JWT attributes (requestPrincipals) but no RequestAuthentication selects the workloads it applies to: no request has a verified token, so requests matching only through it are denied."},
		{"requestPrincipals with RequestAuthentication", "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  jwtRules: [{issuer: iss, jwks: '{\"keys\":[]}'}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n", ""},
		{"request.auth claims in another workload's policy", "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\nspec:\n  selector: {matchLabels: {app: other}}\n  jwtRules: [{issuer: iss, jwks: '{\"keys\":[]}'}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  action: DENY\n  rules:\n  - when: [{key: \"request.auth.claims[groups]\", values: [admin]}]\n", "the rule never matches"},
		{"mtls plaintext to strict", svcReviews + "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n---\n" + strings.Replace(drReviews, "  subsets:", "  trafficPolicy: {tls: {mode: DISABLE}}\n  subsets:", 1),
			`The DestinationRule "default/reviews" specifies that mTLS must be false but the Policy object "istio-system/default" specifies STRICT.`},
		{"mtls to disabled", svcReviews + "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: DISABLE}\n---\n" + strings.Replace(drReviews, "  subsets:", "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n  subsets:", 1),
			`specifies that mTLS must be true but the Policy object "default/p" specifies DISABLE.`},
		{"mtls namespace overrides mesh", svcReviews + "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: PERMISSIVE}}\n---\n" + strings.Replace(drReviews, "  subsets:", "  trafficPolicy: {tls: {mode: DISABLE}}\n  subsets:", 1), ""},
		{"mtls simple tls to strict", svcReviews + "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n---\n" + strings.Replace(drReviews, "  subsets:", "  trafficPolicy: {tls: {mode: SIMPLE}}\n  subsets:", 1),
			`The DestinationRule "default/reviews" specifies that mTLS must be false but the Policy object "default/default" specifies STRICT.`},
		{"mtls port-level disable under strict", svcReviews + "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n---\n" + strings.Replace(drReviews, "  subsets:", "  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 9080}\n      tls: {mode: DISABLE}\n  subsets:", 1),
			`specifies that mTLS must be false but the Policy object "default/default" specifies STRICT.`},
		{"strict without auto mtls", svcReviews + "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {enableAutoMtls: false}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n",
			"Error [WFT0010] (PeerAuthentication default/default a.yaml:17) Service reviews.default.svc.cluster.local port 9080 requires mutual TLS (STRICT) but MeshConfig enableAutoMtls is false and no DestinationRule sets ISTIO_MUTUAL for it: clients in the mesh send plaintext and are refused."},
		{"strict without auto mtls, DR istio mutual", svcReviews + "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {enableAutoMtls: false}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n---\n" + strings.Replace(drReviews, "  subsets:", "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n  subsets:", 1), ""},
		{"strict with auto mtls", svcReviews + "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n", ""},
		{"port name convention", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: web, port: 80, targetPort: 8080}]\n", "Info [IST0118] (Service default/web a.yaml:5) Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention of Istio port."},
		{"port name with appProtocol", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: web, port: 80, appProtocol: http}]\n", ""},
		{"serviceentry tcp without address", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db}\nspec:\n  hosts: [db.example.com]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: DNS\n", "Warning [IST0134]"},
		{"unreachable rule", svcReviews + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n  - name: jason\n    match: [{headers: {end-user: {exact: jason}}}]\n    route: [{destination: {host: reviews}}]\n", `VirtualService rule "jason" not used (only the last rule can have no matches).`},
		{"duplicate match", svcReviews + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /b}}, {uri: {prefix: /a}}]\n    route: [{destination: {host: reviews}}]\n  - route: [{destination: {host: reviews}}]\n", "Info [IST0131] (VirtualService default/r a.yaml:17) VirtualService rule 1 match 1 is not used (duplicate/overlapping match in rule 0)."},
		{"unknown annotation", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {networking.istio.io/exportTo: \".\", sidecar.istio.io/bogus: \"x\", example.com/other: y}\nspec:\n  ports: [{name: http, port: 80}]\n", "Warning [IST0108] (Service default/web a.yaml:5) Unknown annotation: sidecar.istio.io/bogus"},
		{"misplaced annotation", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {sidecar.istio.io/inject: \"false\"}\nspec:\n  ports: [{name: http, port: 80}]\n", "Warning [IST0107] (Service default/web a.yaml:5) Misplaced annotation: sidecar.istio.io/inject can only be applied to Pod"},
		{"validation error", svcReviews + vsRoute("reviews", "[reviews]", "", "{host: reviews, subset: V1}"), "Error [IST0106] (VirtualService default/reviews a.yaml:16) Schema validation error: spec.http[0].route[0].destination.subset"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := LoadReader("a.yaml", strings.NewReader(c.src), Options{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			msgs := Analyze(res, AnalyzeOptions{})
			var lines []string
			for _, m := range msgs {
				lines = append(lines, m.String())
			}
			got := strings.Join(lines, "\n")
			if c.want == "" {
				if got != "" {
					t.Errorf("unexpected messages:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("want %q in:\n%s", c.want, got)
			}
		})
	}
}

func TestResolveHost(t *testing.T) {
	for _, c := range []struct{ in, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.prod", "default", "reviews.prod"},
		{"reviews.prod.svc.cluster.local", "default", "reviews.prod.svc.cluster.local"},
		{"*.example.com", "default", "*.example.com"},
		{"*", "default", "*"},
		{"10.0.0.1", "default", "10.0.0.1"},
	} {
		if got := ResolveHost(c.in, c.ns, ""); got != c.want {
			t.Errorf("ResolveHost(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHostMatching(t *testing.T) {
	for _, c := range []struct {
		a, b           string
		match, aSubset bool
	}{
		{"a.com", "a.com", true, true},
		{"a.com", "*.com", true, true},
		{"*.com", "a.com", true, false},
		{"*.a.com", "*.com", true, true},
		{"*", "a.com", true, false},
		{"a.com", "*", true, true},
		{"a.com", "b.com", false, false},
		{"*.a.com", "*.b.com", false, false},
	} {
		if got := hostMatches(c.a, c.b); got != c.match {
			t.Errorf("hostMatches(%q, %q) = %v", c.a, c.b, got)
		}
		if got := hostSubsetOf(c.a, c.b); got != c.aSubset {
			t.Errorf("hostSubsetOf(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// Hand-built resources with the wrong or missing Go types must not crash
// Validate or Analyze (other packages construct Resources directly).
func TestMistypedResources(t *testing.T) {
	res := []*Resource{
		{Kind: KindVirtualService, Name: "a", Namespace: "default", Object: &corev1.Service{}},
		{Kind: KindVirtualService, Name: "b", Namespace: "default"},
		{Kind: KindService, Name: "c", Namespace: "default"},
		{Kind: KindDestinationRule, Name: "d", Namespace: "default", Spec: &networking.Gateway{}},
	}
	if errs := Validate(res[0]); len(errs) != 1 || !strings.Contains(errs[0].Msg, "holds a *v1.Service") {
		t.Errorf("Validate = %v", ErrorList(errs))
	}
	Validate(res[1])
	Validate(res[2])
	Validate(res[3])
	Analyze(res, AnalyzeOptions{})
}
