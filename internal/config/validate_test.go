package config

import (
	"strings"
	"testing"
)

// doc builds a one-resource YAML document; spec is indented by the caller
// with two spaces per level below "spec:".
func doc(apiVersion, kind, spec string) string {
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: r\nspec:\n" + spec
}

const (
	net1 = "networking.istio.io/v1"
	sec1 = "security.istio.io/v1"
)

func validateOne(t *testing.T, src string) []*Error {
	t.Helper()
	res, err := LoadReader("v.yaml", strings.NewReader(src), Options{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(res) != 1 {
		t.Fatalf("got %d resources", len(res))
	}
	return Validate(res[0])
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name, src string
		want      string // substring of one error; "" means valid
	}{
		// VirtualService
		{"vs valid", doc(net1, "VirtualService", "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 50\n    - destination: {host: reviews, subset: v2}\n      weight: 50\n"), ""},
		{"vs single destination without weight", doc(net1, "VirtualService", "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"), ""},
		{"vs no hosts with gateways", doc(net1, "VirtualService", "  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: a}\n"), "delegate virtual service"},
		{"vs bad host", doc(net1, "VirtualService", "  hosts: [\"foo..com\"]\n  http:\n  - route:\n    - destination: {host: a}\n"), "v.yaml:6:11: spec.hosts[0]: host has an empty label"},
		{"vs wildcard in middle", doc(net1, "VirtualService", "  hosts: [\"foo.*.com\"]\n  http:\n  - route:\n    - destination: {host: a}\n"), "only allowed as the leftmost"},
		{"vs star on mesh", doc(net1, "VirtualService", "  hosts: [\"*\"]\n  http:\n  - route:\n    - destination: {host: a}\n"), "wildcard host * is not allowed for virtual services bound to the mesh gateway"},
		{"vs star on gateway", doc(net1, "VirtualService", "  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: a}\n"), ""},
		{"vs duplicate hosts", doc(net1, "VirtualService", "  hosts: [\"*.foo.com\", a.foo.com]\n  http:\n  - route:\n    - destination: {host: a}\n"), "duplicate hosts"},
		{"vs no routes", doc(net1, "VirtualService", "  hosts: [a]\n"), "http, tcp or tls must be provided"},
		{"vs route and redirect", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - redirect: {uri: /x}\n    route:\n    - destination: {host: a}\n"), "HTTP route cannot contain both route and redirect"},
		{"vs empty route", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - timeout: 1s\n"), "HTTP route, redirect or direct_response is required"},
		{"vs bad regex", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - match:\n    - uri: {regex: \"a(b\"}\n    route:\n    - destination: {host: a}\n"), "v.yaml:9:13: spec.http[0].match[0].uri.regex: invalid regex"},
		{"vs perl regex", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - match:\n    - headers:\n        x: {regex: \"(?!foo)\"}\n    route:\n    - destination: {host: a}\n"), "spec.http[0].match[0].headers[x].regex: invalid regex"},
		{"vs timeout below 1ms", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - timeout: 100us\n    route:\n    - destination: {host: a}\n"), "spec.http[0].timeout: duration 100µs must be at least 1ms"},
		{"vs timeout sub-ms", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - timeout: 1500us\n    route:\n    - destination: {host: a}\n"), "ms precision"},
		{"vs bad subset name", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a, subset: V_1}\n"), "subset name \"V_1\" is invalid"},
		{"vs bad port", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a, port: {number: 70000}}\n"), "port number 70000 must be in the range 1..65535"},
		{"vs fault percent", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - fault:\n      abort: {httpStatus: 503, percentage: {value: 120}}\n    route:\n    - destination: {host: a}\n"), "spec.http[0].fault.abort.percentage.value: percentage 120"},
		{"vs fault status", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - fault:\n      abort: {httpStatus: 700}\n    route:\n    - destination: {host: a}\n"), "HTTP status 700 is not in range 200-599"},
		{"vs fault empty", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - fault: {}\n    route:\n    - destination: {host: a}\n"), "must have an abort and/or a delay"},
		{"vs legacy delay percent", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - fault:\n      delay: {percent: 100, fixedDelay: 2s}\n    route:\n    - destination: {host: a}\n"), ""},
		{"vs mirror percentage", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    mirror: {host: b}\n    mirrorPercentage: {value: 101}\n"), "spec.http[0].mirrorPercentage: mirror percentage must have a max value of 100"},
		{"vs retries bad policy", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    retries: {attempts: 3, retryOn: \"5xx,bogus,503\"}\n"), "\"bogus\" is not a valid retryOn policy"},
		{"vs retries attempts 0", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    retries: {attempts: 0, perTryTimeout: 1s}\n"), "attempts are set to 0"},
		{"vs redirect code", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - redirect: {uri: /b, redirectCode: 200}\n"), "200 is not a valid redirect code"},
		{"vs direct response status", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - directResponse: {status: 99}\n"), "status 99 is not a valid HTTP status"},
		{"vs cors method", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    corsPolicy: {allowMethods: [GET, FETCH]}\n"), "\"FETCH\" is not a supported HTTP method"},
		{"vs gateway name", doc(net1, "VirtualService", "  hosts: [a]\n  gateways: [\"Bad/gw\"]\n  http:\n  - route:\n    - destination: {host: a}\n"), "invalid value for namespace: \"Bad\""},
		{"vs tls sni not in hosts", doc(net1, "VirtualService", "  hosts: [a.example.com]\n  tls:\n  - match:\n    - sniHosts: [b.example.com]\n    route:\n    - destination: {host: a}\n"), "SNI host \"b.example.com\" is not a compatible subset"},
		{"vs exportTo", doc(net1, "VirtualService", "  hosts: [a]\n  exportTo: [\"*\", foo]\n  http:\n  - route:\n    - destination: {host: a}\n"), "cannot combine \"*\""},
		{"vs header name", doc(net1, "VirtualService", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    headers:\n      request:\n        set: {\":path\": x}\n"), "header cannot have \":\" prefix"},

		// DestinationRule
		{"dr valid", doc(net1, "DestinationRule", "  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n"), ""},
		{"dr no host", doc(net1, "DestinationRule", "  subsets: []\n"), "spec.host: host is required"},
		{"dr subset name", doc(net1, "DestinationRule", "  host: a\n  subsets:\n  - name: V1\n"), "v.yaml:8:5: spec.subsets[0].name: subset name \"V1\" is invalid"},
		{"dr subset twice", doc(net1, "DestinationRule", "  host: a\n  subsets:\n  - name: v1\n  - name: v1\n"), "duplicate subset name \"v1\""},
		{"dr mutual without certs", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    tls: {mode: MUTUAL}\n"), "client certificate required for mutual tls"},
		{"dr mutual with credentialName", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: c}\n"), ""},
		{"dr simple", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n"), ""},
		{"dr cookie without name", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie: {ttl: 0s}\n"), "name required for httpCookie"},
		{"dr maglev prime", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        useSourceIp: true\n        maglev: {tableSize: 100}\n"), "must be a prime number"},
		{"dr pool negative", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: -1}\n"), "spec.trafficPolicy.connectionPool.tcp.maxConnections: maxConnections must be non-negative"},
		{"dr pool empty", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    connectionPool: {}\n"), "connection pool must have at least one field"},
		{"dr outlier percent", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    outlierDetection: {maxEjectionPercent: 101, interval: 1s}\n"), "percentage 101 is not in range 0..100"},
		{"dr outlier interval", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    outlierDetection: {interval: 0s}\n"), "spec.trafficPolicy.outlierDetection.interval: duration 0s must be at least 1ms"},
		{"dr port level without port", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    portLevelSettings:\n    - tls: {mode: SIMPLE}\n"), "portLevelSettings entry must have a port"},
		{"dr locality weights", doc(net1, "DestinationRule", "  host: a\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: a/*\n          to: {b/*: 60}\n"), "total locality weight 60 != 100"},

		// Gateway
		{"gw valid", doc(net1, "Gateway", "  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"), ""},
		{"gw no servers", doc(net1, "Gateway", "  selector: {istio: ingressgateway}\n"), "gateway must have at least one server"},
		{"gw bad port", doc(net1, "Gateway", "  servers:\n  - port: {number: 0, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"), "spec.servers[0].port.number: port number 0"},
		{"gw bad protocol", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP3}\n    hosts: [\"*\"]\n"), "unsupported protocol \"HTTP3\""},
		{"gw short host", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"foo/bar\"]\n"), "short names (non FQDN) are not allowed"},
		{"gw bad namespace", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"Foo/bar.com\"]\n"), "invalid namespace value \"Foo\""},
		{"gw ns host", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"./bar.com\", \"prod/*.bar.com\"]\n"), ""},
		{"gw https without tls", doc(net1, "Gateway", "  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n"), "server must have TLS settings for HTTPS/TLS protocols"},
		{"gw simple without cert", doc(net1, "Gateway", "  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: SIMPLE}\n"), "SIMPLE TLS requires a server certificate (or credentialName)"},
		{"gw simple credential", doc(net1, "Gateway", "  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: SIMPLE, credentialName: c}\n"), ""},
		{"gw mutual files without ca", doc(net1, "Gateway", "  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}\n"), "MUTUAL TLS requires a client CA bundle"},
		{"gw https redirect", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n    tls: {httpsRedirect: true}\n"), ""},
		{"gw tls on http", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n    tls: {mode: SIMPLE, credentialName: c}\n"), "server cannot have TLS settings for plain text HTTP ports"},
		{"gw duplicate port names", doc(net1, "Gateway", "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n  - port: {number: 81, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"), "port names in servers must be unique"},
		{"gw selector wildcard", doc(net1, "Gateway", "  selector: {istio: \"*\"}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"), "wildcard is not supported in selector"},

		// ServiceEntry
		{"se valid", doc(net1, "ServiceEntry", "  hosts: [httpbin.org]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: DNS\n"), ""},
		{"se no hosts", doc(net1, "ServiceEntry", "  ports:\n  - {number: 80, name: http}\n"), "service entry must have at least one host"},
		{"se star host", doc(net1, "ServiceEntry", "  hosts: [\"*\"]\n  ports:\n  - {number: 80, name: http}\n"), "invalid host *"},
		{"se dns wildcard", doc(net1, "ServiceEntry", "  hosts: [\"*.example.com\"]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: DNS\n"), "hosts must be FQDN if no endpoints are provided for resolution mode DNS"},
		{"se none wildcard", doc(net1, "ServiceEntry", "  hosts: [\"*.example.com\"]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: NONE\n"), ""},
		{"se none endpoints", doc(net1, "ServiceEntry", "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  resolution: NONE\n  endpoints:\n  - address: 1.2.3.4\n"), "no endpoints should be provided for resolution type NONE"},
		{"se static hostname endpoint", doc(net1, "ServiceEntry", "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  resolution: STATIC\n  endpoints:\n  - address: foo.com\n"), "is not a valid IP address (resolution STATIC)"},
		{"se endpoint port undefined", doc(net1, "ServiceEntry", "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  resolution: STATIC\n  endpoints:\n  - address: 1.2.3.4\n    ports: {grpc: 8080}\n"), "endpoint port \"grpc\" is not defined"},
		{"se duplicate port", doc(net1, "ServiceEntry", "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  - {number: 80, name: http2}\n"), "service entry port 80 already defined"},
		{"se cidr with dns", doc(net1, "ServiceEntry", "  hosts: [a.example.com]\n  addresses: [10.0.0.0/8]\n  ports:\n  - {number: 80, name: http}\n  resolution: DNS\n"), "CIDR addresses are allowed only for NONE/STATIC"},
		{"se multiple hosts tcp", doc(net1, "ServiceEntry", "  hosts: [a.example.com, b.example.com]\n  ports:\n  - {number: 80, name: tcp, protocol: TCP}\n  resolution: DNS\n"), "multiple hosts provided with non-HTTP, non-TLS ports"},
		{"se selector and endpoints", doc(net1, "ServiceEntry", "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}\n  endpoints:\n  - address: 1.2.3.4\n"), "only one of workloadSelector or endpoints"},

		// WorkloadEntry, WorkloadGroup, Sidecar
		{"we valid", doc(net1, "WorkloadEntry", "  address: 10.0.0.1\n  labels: {app: a}\n  ports: {http: 8080}\n"), ""},
		{"we no address", doc(net1, "WorkloadEntry", "  labels: {app: a}\n"), "address must be set"},
		{"we bad address", doc(net1, "WorkloadEntry", "  address: \"not an address\"\n"), "is not an IP address, a hostname or unix:// path"},
		{"we bad port", doc(net1, "WorkloadEntry", "  address: 10.0.0.1\n  ports: {http: 0}\n"), "spec.ports[http]: port number 0"},
		{"sidecar valid", doc(net1, "Sidecar", "  egress:\n  - hosts: [\"./*\", \"istio-system/*\"]\n"), ""},
		{"sidecar egress host form", doc(net1, "Sidecar", "  egress:\n  - hosts: [\"reviews.default.svc.cluster.local\"]\n"), "must be of form namespace/dnsName"},
		{"sidecar egress no hosts", doc(net1, "Sidecar", "  egress:\n  - port: {number: 80, name: http, protocol: HTTP}\n"), "egress listener must contain at least one host"},
		{"sidecar default endpoint", doc(net1, "Sidecar", "  ingress:\n  - port: {number: 80, name: http, protocol: HTTP}\n    defaultEndpoint: 10.0.0.1:8080\n"), "defaultEndpoint \"10.0.0.1:8080\" must be of form"},

		// PeerAuthentication
		{"pa valid", doc(sec1, "PeerAuthentication", "  mtls: {mode: STRICT}\n"), ""},
		{"pa port level without selector", doc(sec1, "PeerAuthentication", "  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n"), "v.yaml:7:3: spec.portLevelMtls: portLevelMtls requires a workload selector"},
		{"pa port level with selector", doc(sec1, "PeerAuthentication", "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n"), ""},
		{"pa bad port", doc(sec1, "PeerAuthentication", "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    0: {mode: DISABLE}\n"), "port number 0"},

		// RequestAuthentication
		{"ra valid", doc(sec1, "RequestAuthentication", "  jwtRules:\n  - issuer: testing@secure.istio.io\n    jwksUri: https://example.com/jwks.json\n"), ""},
		{"ra no issuer", doc(sec1, "RequestAuthentication", "  jwtRules:\n  - audiences: [a]\n"), "issuer or jwksUri must be non-empty string"},
		{"ra bad jwksUri", doc(sec1, "RequestAuthentication", "  jwtRules:\n  - issuer: i\n    jwksUri: ftp://x/jwks\n"), "URI scheme \"ftp\" is not supported"},
		{"ra empty header", doc(sec1, "RequestAuthentication", "  jwtRules:\n  - issuer: i\n    fromHeaders: [{prefix: \"Bearer \"}]\n"), "location header name must be non-empty string"},

		// AuthorizationPolicy
		{"ap valid", doc(sec1, "AuthorizationPolicy", "  action: ALLOW\n  rules:\n  - from:\n    - source: {principals: [\"cluster.local/ns/default/sa/curl\"]}\n    to:\n    - operation: {methods: [GET], paths: [\"/info*\"]}\n    when:\n    - key: request.auth.claims[iss]\n      values: [\"testing@secure.istio.io\"]\n"), ""},
		{"ap allow nothing", doc(sec1, "AuthorizationPolicy", "  {}\n"), ""},
		{"ap custom without provider", doc(sec1, "AuthorizationPolicy", "  action: CUSTOM\n  rules:\n  - {}\n"), "action CUSTOM requires a provider"},
		{"ap provider on allow", doc(sec1, "AuthorizationPolicy", "  action: ALLOW\n  provider: {name: ext}\n"), "provider must only be used with action CUSTOM"},
		{"ap custom valid", doc(sec1, "AuthorizationPolicy", "  action: CUSTOM\n  provider: {name: ext}\n  rules:\n  - to:\n    - operation: {paths: [\"/admin\"]}\n"), ""},
		{"ap audit", doc(sec1, "AuthorizationPolicy", "  action: AUDIT\n  rules:\n  - to:\n    - operation: {paths: [\"/admin\"]}\n"), ""},
		{"ap empty source", doc(sec1, "AuthorizationPolicy", "  rules:\n  - from:\n    - source: {}\n"), "`from.source` must not be empty"},
		{"ap unknown key", doc(sec1, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: request.auth.foo\n      values: [x]\n"), "v.yaml:8:7: spec.rules[0].when[0].key: unknown key \"request.auth.foo\""},
		{"ap no values", doc(sec1, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: source.ip\n"), "at least one of `values` or `notValues` must be set"},
		{"ap bad ip", doc(sec1, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: source.ip\n      values: [\"10.0.0.300\"]\n"), "\"10.0.0.300\" is not a valid IP address"},
		{"ap bad port", doc(sec1, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation: {ports: [\"http\"]}\n"), "invalid port \"http\""},
		{"ap bad path", doc(sec1, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation: {paths: [\"/a*b\"]}\n"), "\"*\" is only allowed as a prefix or suffix"},
		{"ap selector and targetRef", doc(sec1, "AuthorizationPolicy", "  selector: {matchLabels: {app: a}}\n  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: g}\n"), "only one of selector or targetRef"},

		// Telemetry
		{"telemetry valid", doc("telemetry.istio.io/v1", "Telemetry", "  accessLogging:\n  - providers: [{name: envoy}]\n"), ""},
		{"telemetry sampling", doc("telemetry.istio.io/v1", "Telemetry", "  tracing:\n  - randomSamplingPercentage: 150\n"), "randomSamplingPercentage 150 must be in range"},
		{"telemetry provider", doc("telemetry.istio.io/v1", "Telemetry", "  metrics:\n  - providers: [{name: \"\"}]\n"), "provider name must not be empty"},

		// Kubernetes Service and Secret, MeshConfig
		{"service valid", doc("v1", "Service", "  ports:\n  - {name: http, port: 8000, targetPort: 8080}\n  selector: {app: httpbin}\n"), ""},
		{"service no ports", doc("v1", "Service", "  selector: {app: httpbin}\n"), "service must have at least one port"},
		{"headless service without ports", doc("v1", "Service", "  clusterIP: None\n  selector: {app: db}\n"), ""},
		{"service unnamed ports", doc("v1", "Service", "  ports:\n  - {port: 80}\n  - {port: 81}\n"), "port name is required when a service has more than one port"},
		{"service bad port", doc("v1", "Service", "  ports:\n  - {name: http, port: 0}\n"), "spec.ports[0].port: port number 0"},
		{"secret tls missing key", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n", "needs data[tls.key]"},
		{"secret tls not a pair", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x, tls.key: y}\n", "data[tls.crt]: certificate and data[tls.key] do not form a TLS key pair"},
		{"secret generic not a pair", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {cert: x, key: y}\n", "data[cert]: certificate and data[key] do not form"},
		{"secret cacert not PEM", "apiVersion: v1\nkind: Secret\nmetadata: {name: s-cacert}\nstringData: {cacert: x}\n", "data[cacert]: no PEM certificate"},
		{"mesh connect timeout", doc("mesh.istio.io/v1alpha1", "MeshConfig", "  connectTimeout: 0s\n"), "spec.connectTimeout: duration 0s must be at least 1ms"},
		{"bad name", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: Bad_Name}\nspec: {host: a}\n", "invalid name \"Bad_Name\""},
		{"gateway name with dot", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a.b}\nspec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n", "invalid gateway name \"a.b\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := validateOne(t, c.src)
			if c.want == "" {
				for _, e := range errs {
					t.Errorf("unexpected: %v", e)
				}
				return
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), c.want) {
					return
				}
			}
			t.Errorf("no error containing %q; got %v", c.want, ErrorList(errs))
		})
	}
}
