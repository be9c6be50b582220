package config

import (
	"strings"
	"testing"
)

// TestValidateIstioParity is one case per rule changed to match Istio
// 1.31's admission webhook (istio/istio pkg/config/validation, and the
// agent package it calls). Each case cites the Istio function whose rule it
// mirrors. want is a substring of an error, warn of a warning; both empty
// means accepted cleanly.
func TestValidateIstioParity(t *testing.T) {
	dr := func(spec string) string { return doc(net1, "DestinationRule", "  host: a.example.com\n"+spec) }
	se := func(spec string) string { return doc(net1, "ServiceEntry", spec) }
	sc := func(spec string) string { return doc(net1, "Sidecar", spec) }
	vs := func(http string) string { return doc(net1, "VirtualService", "  hosts: [a]\n  http:\n"+http) }
	gw := func(server string) string {
		return doc(net1, "Gateway", "  selector: {istio: ingressgateway}\n  servers:\n  - hosts: ['*']\n"+server)
	}
	authz := func(key, value string) string {
		return doc(sec1, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: "+key+"\n      values: ["+value+"]\n")
	}
	for _, c := range []struct {
		name, src  string
		want, warn string
	}{
		// ValidateServiceEntry: no "at least one port" rule any more.
		{name: "se without ports accepted", src: se("  hosts: [example.com]\n  addresses: [1.1.1.1/32]\n")},
		// ValidateServiceEntry: STATIC needs neither endpoints nor a selector.
		{name: "se static without endpoints accepted", src: se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n")},
		// ValidateServiceEntry, NONE: workloadSelector is a warning.
		{name: "se none with selector warns", src: se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: NONE\n  workloadSelector: {labels: {app: a}}\n"),
			warn: "workloadSelector should not be set when resolution mode is NONE"},
		// ValidateServiceEntry, DYNAMIC_DNS: hosts must be wildcards.
		{name: "se dynamic dns exact host", src: se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DYNAMIC_DNS\n"),
			want: "host must be wildcarded for resolution mode DYNAMIC_DNS"},
		// ValidateServiceEntry, DYNAMIC_DNS: HTTP, TLS, GRPC, HTTP2 only.
		{name: "se dynamic dns tcp port", src: se("  hosts: ['*.example.com']\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: DYNAMIC_DNS\n"),
			want: "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS"},
		// ValidateServiceEntry, DYNAMIC_DNS: no addresses.
		{name: "se dynamic dns addresses", src: se("  hosts: ['*.example.com']\n  addresses: [10.0.0.1]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DYNAMIC_DNS\n"),
			want: "addresses cannot be set for resolution type DYNAMIC_DNS"},
		{name: "se dynamic dns wildcard ok", src: se("  hosts: ['*.example.com']\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  resolution: DYNAMIC_DNS\n")},

		// validateTrafficPolicy: an empty trafficPolicy is an error.
		{name: "dr empty traffic policy", src: dr("  trafficPolicy: {}\n"), want: "traffic policy must have at least one field"},
		// validatePortTrafficPolicies: a port entry needs a setting.
		{name: "dr empty port policy", src: dr("  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n"), want: "port traffic policy must have at least one field"},
		// validatePortTrafficPolicies has no duplicate-port rule.
		{name: "dr duplicate port accepted", src: dr("  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      loadBalancer: {simple: RANDOM}\n    - port: {number: 80}\n      loadBalancer: {simple: ROUND_ROBIN}\n")},
		// validateLoadBalancer: consistentHash without a key is accepted.
		{name: "dr consistent hash without key accepted", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash: {}\n")},
		{name: "dr use source ip false accepted", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: false}\n")},
		// validateLoadBalancer: maglev tableSize must be set.
		{name: "dr maglev without table size", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n        maglev: {}\n"), want: "tableSize must be set for maglev"},
		// validateLoadBalancer: maglev tableSize below 5000011.
		{name: "dr maglev table too big", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n        maglev: {tableSize: 5000011}\n"), want: "tableSize must be less than 5000011"},
		// isPrime (Envoy's): 3 is prime, so accepted.
		{name: "dr maglev table 3", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n        maglev: {tableSize: 3}\n")},
		// validateLoadBalancer: minimumRingSize is deprecated (warning) and
		// conflicts with maglev as well as ringHash.
		{name: "dr minimum ring size warns", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: x-user, minimumRingSize: 1024}\n"),
			warn: "consistent hash MinimumRingSize is deprecated"},
		{name: "dr minimum ring size with maglev", src: dr("  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n        minimumRingSize: 1024\n        maglev: {tableSize: 65537}\n"),
			want: "only one of MinimumRingSize or Maglev/Ringhash can be specified", warn: "MinimumRingSize is deprecated"},
		// ValidateLocalityLbSetting: failover without outlier detection warns.
		{name: "dr failover without outlier warns", src: dr("  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: r1, to: r2}]\n"),
			warn: "outlier detection policy must be provided for failover"},
		// ValidateLocalityLbSetting: failover names regions only.
		{name: "dr failover zone", src: dr("  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: r1/z1, to: r2}]\n    outlierDetection: {consecutive5xxErrors: 1}\n"),
			want: "locality lb failover only specify region"},
		// ValidateLocalityLbSetting: "*" in from as well as to.
		{name: "dr failover from wildcard", src: dr("  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: '*', to: r2}]\n    outlierDetection: {consecutive5xxErrors: 1}\n"),
			want: "should not contain '*' wildcard"},
		// ValidateLocalityLbSetting: failover and a topology failoverPriority label.
		{name: "dr failover with topology priority", src: dr("  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: r1, to: r2}]\n        failoverPriority: [topology.kubernetes.io/zone]\n    outlierDetection: {consecutive5xxErrors: 1}\n"),
			want: "can not simultaneously set 'failover' and topology label"},
		// validateLocalities: wildcard only last.
		{name: "dr distribute wildcard middle", src: dr("  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: 'r1/*/s1'\n          to: {r1: 100}\n"),
			want: "wildcard '*' number can not exceed 1 and must be in the end"},
		// validateLocalities: overlapping localities.
		{name: "dr distribute overlapping to", src: dr("  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: r1\n          to: {r2: 50, r2/z1: 50}\n"),
			want: "overlap with previous specified ones"},
		// validateOutlierDetection: consecutiveErrors is deprecated (warning).
		{name: "dr consecutive errors warns", src: dr("  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 5}\n"),
			warn: "outlier detection consecutive errors is deprecated"},
		// validateOutlierDetection: local origin failures need the split.
		{name: "dr local origin without split", src: dr("  trafficPolicy:\n    outlierDetection: {consecutiveLocalOriginFailures: 3}\n"),
			want: "split external local origin errors is set to false"},
		// agent.ValidateTLS has no ISTIO_MUTUAL rule: certificates are ignored.
		{name: "dr istio mutual with certs accepted", src: dr("  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, caCertificates: /x}\n")},
		// agent.ValidateTLS: insecureSkipVerify conflicts with a CA.
		{name: "dr insecure skip verify with ca", src: dr("  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}\n"),
			want: "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true"},
		// agent.ValidateTLS: caCrl with credentialName.
		{name: "dr crl with credential", src: dr("  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: c, caCrl: /crl.pem}\n"),
			want: "cannot specify client certificates or CA certificate or CA CRL if credentialName is set"},

		// ValidateSidecar: an empty Sidecar is an error.
		{name: "sidecar empty", src: sc("  workloadSelector: {labels: {app: a}}\n"), want: "sidecar: empty configuration provided"},
		// ValidateAlphaWorkloadSelector: a selector without labels warns.
		{name: "sidecar selector without labels", src: sc("  workloadSelector: {}\n  egress: [{hosts: ['./*']}]\n"),
			warn: "workload selector specified without labels"},
		// ValidateSidecar: targetPort has no effect on a Sidecar port.
		{name: "sidecar target port", src: sc("  ingress:\n  - port: {number: 9080, protocol: HTTP, name: http, targetPort: 8080}\n    defaultEndpoint: 127.0.0.1:8080\n"),
			want: "targetPort has no impact on Sidecars"},
		// ValidateSidecar: ingress tls on a plaintext port.
		{name: "sidecar ingress tls on http", src: sc("  ingress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n    tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}\n"),
			want: "server cannot have TLS settings for non HTTPS/TLS ports"},
		// ValidateSidecar: ingress tls ISTIO_MUTUAL is not allowed.
		{name: "sidecar ingress tls istio mutual", src: sc("  ingress:\n  - port: {number: 9443, protocol: HTTPS, name: https}\n    tls: {mode: ISTIO_MUTUAL}\n"),
			want: "cannot set mode to ISTIO_MUTUAL in sidecar ingress tls"},
		// ValidateSidecar: HTTP pool settings on a TCP ingress port warn.
		{name: "sidecar http pool on tcp", src: sc("  ingress:\n  - port: {number: 5432, protocol: TCP, name: tcp}\n    connectionPool: {http: {maxRetries: 3}}\n"),
			warn: "HTTP connection pool settings are configured for port 5432"},
		// validateSidecarEgressPortBindAndCaptureMode: port 0 needs a socket.
		{name: "sidecar uds without socket", src: sc("  egress:\n  - port: {number: 0, protocol: HTTP, name: http}\n    hosts: ['./*']\n"),
			want: "ports with 0 value must have a unix domain socket bind address"},
		{name: "sidecar uds", src: sc("  egress:\n  - port: {number: 0, protocol: HTTP, name: http}\n    bind: unix:///var/run/app.sock\n    hosts: ['./*']\n")},
		// validateSidecarEgressPortBindAndCaptureMode: an IP port binds an IP.
		{name: "sidecar ip port unix bind", src: sc("  egress:\n  - port: {number: 80, protocol: HTTP, name: http}\n    bind: unix:///var/run/app.sock\n    hosts: ['./*']\n"),
			want: "is not a valid IP"},
		// ValidateSidecar: duplicated egress hosts and */* with others warn.
		{name: "sidecar duplicated host", src: sc("  egress:\n  - hosts: ['./*', './a.example.com']\n"), warn: "duplicated egress host"},
		{name: "sidecar all and more", src: sc("  egress:\n  - hosts: ['*/*', 'ns1/a.example.com']\n"), warn: "`*/*` host select all resources"},

		// security.ValidateAttribute: source.trustDomain is a condition key
		// (wildcard only at an end).
		{name: "authz trust domain", src: authz("source.trustDomain", "'*.example.org'")},
		{name: "authz trust domain wildcard middle", src: authz("source.trustDomain", "'a*b'"), want: "wildcard is only allowed at the start or end"},
		// security.CheckServiceAccount: no wildcard, "sa" or "ns/sa".
		{name: "authz service account wildcard", src: authz("source.serviceAccount", "'default/*'"), want: "wildcard not allowed"},
		{name: "authz service account format", src: authz("source.serviceAccount", "'a/b/c'"), want: "expected format 'serviceAccount' or 'namespace/serviceAccount'"},
		// security.CheckEmptyValues: no empty value.
		{name: "authz empty value", src: authz("source.namespace", "''"), want: "empty value not allowed"},

		// ValidateGateway: httpsRedirect on a non-HTTP server only warns.
		{name: "gw https redirect on https warns", src: gw("    port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, httpsRedirect: true, credentialName: c}\n"),
			warn: "tls.httpsRedirect should only be used with http servers"},
		// validateServerPort: targetPort has no effect on a Gateway.
		{name: "gw target port", src: gw("    port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n"), want: "targetPort has no impact on Gateways"},
		// validateServerBind: a Unix socket server takes port 0.
		{name: "gw unix bind", src: gw("    port: {number: 0, name: http, protocol: HTTP}\n    bind: unix:///var/run/gw.sock\n")},
		{name: "gw unix bind with port", src: gw("    port: {number: 80, name: http, protocol: HTTP}\n    bind: unix:///var/run/gw.sock\n"), want: "port number must be 0 for unix domain socket"},
		// validateTLSOptions: one certificate source.
		{name: "gw two certificate sources", src: gw("    port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: c, serverCertificate: /c, privateKey: /k}\n"),
			want: "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified"},
		// validateTLSOptions: CRL with SIMPLE.
		{name: "gw crl simple", src: gw("    port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}\n"), want: "CRL is not supported with SIMPLE TLS"},
		// validateTLSOptions: passthrough with certificates only warns.
		{name: "gw passthrough with certs warns", src: gw("    port: {number: 443, name: tls, protocol: TLS}\n    tls: {mode: PASSTHROUGH, serverCertificate: /c}\n"),
			warn: "PASSTHROUGH mode does not use certificates"},
		// validateTLSOptions: old TLS versions without ciphers warn.
		{name: "gw tls 1.0 without ciphers warns", src: gw("    port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}\n"),
			warn: "TLS version below TLSV1_2 require setting compatible ciphers"},

		// validateHTTPRoute: mirrorPercent is deprecated (warning).
		{name: "vs mirror percent warns", src: vs("  - route: [{destination: {host: a}}]\n    mirror: {host: b}\n    mirrorPercent: 50\n"),
			warn: `using deprecated setting "mirrorPercent"`},
		// validateHTTPFaultInjectionAbort: no error type only warns.
		{name: "vs abort without type warns", src: vs("  - route: [{destination: {host: a}}]\n    fault: {abort: {percentage: {value: 10}}}\n"),
			warn: "abort configured, but error type not set"},
		// validateHTTPFaultInjectionDelay: no delay type is accepted.
		{name: "vs delay without type accepted", src: vs("  - route: [{destination: {host: a}}]\n    fault: {delay: {percentage: {value: 10}}}\n")},
		// validateGRPCStatus: a gRPC code name, not a number.
		{name: "vs abort grpc number", src: vs("  - route: [{destination: {host: a}}]\n    fault: {abort: {grpcStatus: '14'}}\n"), want: "gRPC status \"14\" is not supported"},
		{name: "vs abort grpc name", src: vs("  - route: [{destination: {host: a}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE}}\n")},

		// validateWorkloadEntry: no address but a network only warns.
		{name: "we network without address warns", src: doc(net1, "WorkloadEntry", "  network: net2\n"), warn: `address is unset with network "net2"`},
		// validateWorkloadEntry: a unix endpoint takes no ports.
		{name: "we unix with ports", src: doc(net1, "WorkloadEntry", "  address: unix:///var/run/a.sock\n  ports: {http: 80}\n"), want: "must not include ports"},
		// validateWorkloadEntry: port names are DNS labels.
		{name: "we bad port name", src: doc(net1, "WorkloadEntry", "  address: 10.0.0.1\n  ports: {HTTP_1: 80}\n"), want: "invalid port name"},
		// validateWorkloadEntry has no serviceAccount rule.
		{name: "we service account accepted", src: doc(net1, "WorkloadEntry", "  address: 10.0.0.1\n  serviceAccount: Odd_Name\n")},
		// ValidateWorkloadGroup does not validate the template as an entry.
		{name: "wg template address accepted", src: doc(net1, "WorkloadGroup", "  template: {address: 10.0.0.1}\n")},
		{name: "wg without template", src: doc(net1, "WorkloadGroup", "  metadata: {labels: {app: a}}\n"), want: "template is required"},

		// validateTelemetryTracing: several tracing entries or providers warn.
		{name: "telemetry two tracings warns", src: doc("telemetry.istio.io/v1", "Telemetry", "  tracing:\n  - providers: [{name: a}]\n  - providers: [{name: b}]\n"),
			warn: "multiple tracing is not currently supported"},
		{name: "telemetry two providers warns", src: doc("telemetry.istio.io/v1", "Telemetry", "  tracing:\n  - providers: [{name: a}, {name: b}]\n"),
			warn: "multiple providers is not currently supported"},
		// validateTelemetryTracing: a literal tag needs a value.
		{name: "telemetry empty literal", src: doc("telemetry.istio.io/v1", "Telemetry", "  tracing:\n  - customTags:\n      env: {literal: {value: ''}}\n"),
			want: "literal tag value may not be empty"},
		// validateTelemetryTracing: a tag without a type is accepted.
		{name: "telemetry untyped tag accepted", src: doc("telemetry.istio.io/v1", "Telemetry", "  tracing:\n  - customTags:\n      env: {}\n")},

		// validateWorkloadSelector: a selector without labels warns.
		{name: "peerauth empty selector warns", src: doc(sec1, "PeerAuthentication", "  selector: {}\n  mtls: {mode: STRICT}\n"), warn: "workload selector specified without labels"},
		{name: "dr empty selector warns", src: dr("  workloadSelector: {}\n"), warn: "workload selector specified without labels"},
	} {
		t.Run(c.name, func(t *testing.T) { checkValidation(t, c.src, c.want, c.warn) })
	}
}

// checkValidation loads one document and checks that validation reports an
// error containing want and a warning containing warn (none when empty).
func checkValidation(t *testing.T, src, want, warn string) {
	t.Helper()
	res, err := LoadReader("v.yaml", strings.NewReader(src), Options{})
	if err != nil || len(res) != 1 {
		t.Fatalf("load: %v (%d resources)", err, len(res))
	}
	errs, warns := ValidateWithWarnings(res[0])
	check := func(kind, want string, got []*Error) {
		if want == "" {
			for _, e := range got {
				t.Errorf("unexpected %s: %v", kind, e)
			}
			return
		}
		for _, e := range got {
			if strings.Contains(e.Error(), want) {
				return
			}
		}
		t.Errorf("no %s containing %q; got %v", kind, want, ErrorList(got))
	}
	check("error", want, errs)
	check("warning", warn, warns)
}
