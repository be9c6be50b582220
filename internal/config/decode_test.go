package config

import (
	"strings"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
)

// TestDecodeForms covers what Istio's jsonpb accepts besides the plain
// form: proto field names, enum numbers, quoted integers, wrappers, YAML
// merge keys, the deprecated integer fault percent, and Struct values.
func TestDecodeForms(t *testing.T) {
	res, err := load(t, `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: httpbin}
defaults: &pool
  tcp: {max_connections: 1}
  http: {http1MaxPendingRequests: "1"}
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      <<: *pool
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1.5s
      baseEjectionTime: 3m
    tls: {mode: 3}
`)
	if err == nil {
		t.Fatal("top-level unknown field (defaults) accepted")
	}
	if !strings.Contains(err.Error(), `t.yaml:4:1: defaults: unknown field "defaults"`) {
		t.Fatalf("err = %v", err)
	}
	// The same without the stray top-level key, anchoring inside spec.
	res, err = load(t, `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  exportTo: &ns ["."]
  trafficPolicy:
    connectionPool:
      tcp: {max_connections: 1}
      http: {http1MaxPendingRequests: "1"}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1.5s
      baseEjectionTime: 3m
    tls: {mode: 3}
`)
	if err != nil {
		t.Fatal(err)
	}
	dr := res[0].Object.(*networkingv1.DestinationRule)
	tp := dr.Spec.TrafficPolicy
	if tp.ConnectionPool.Tcp.MaxConnections != 1 || tp.ConnectionPool.Http.Http1MaxPendingRequests != 1 {
		t.Errorf("pool = %v", tp.ConnectionPool)
	}
	if tp.OutlierDetection.Consecutive_5XxErrors.GetValue() != 1 || tp.OutlierDetection.Interval.AsDuration().String() != "1.5s" ||
		tp.OutlierDetection.BaseEjectionTime.AsDuration().String() != "3m0s" {
		t.Errorf("outlier = %v", tp.OutlierDetection)
	}
	if tp.Tls.Mode.String() != "ISTIO_MUTUAL" {
		t.Errorf("tls mode = %v", tp.Tls.Mode)
	}
	if p := res[0].PosOf("spec.trafficPolicy.connectionPool.tcp.maxConnections"); p.Line != 9 {
		t.Errorf("snake_case field recorded at %v under its JSON name", p)
	}

	res, err = load(t, `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ratings}
base: &route
  route:
  - destination: {host: ratings, subset: v1}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay: {percent: 100, fixedDelay: 2s}
    <<: *route
`)
	if err == nil || !strings.Contains(err.Error(), `unknown field "base"`) {
		t.Fatalf("err = %v", err)
	}
	res, err = load(t, `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - &r
    name: first
    route:
    - destination: {host: ratings, subset: v1}
  - <<: *r
    name: second
    fault:
      delay: {percent: 100, fixedDelay: 2s}
`)
	if err != nil {
		t.Fatal(err)
	}
	vs := res[0].Object.(*networkingv1.VirtualService)
	if len(vs.Spec.Http) != 2 || vs.Spec.Http[1].Name != "second" || vs.Spec.Http[1].Route[0].Destination.Subset != "v1" ||
		vs.Spec.Http[1].Fault.Delay.Percent != 100 {
		t.Errorf("merge key: %v", vs.Spec.Http)
	}

	res, err = load(t, `apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: 10
    customTags:
      env: {literal: {value: prod}}
`)
	if err != nil {
		t.Fatal(err)
	}
	if tel := res[0].Object.(*telemetryv1.Telemetry); tel.Spec.Tracing[0].RandomSamplingPercentage.GetValue() != 10 {
		t.Errorf("telemetry = %v", tel.Spec.Tracing)
	}

	res, err = load(t, `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: p}
spec:
  selector: {matchLabels: {app: httpbin}}
  portLevelMtls:
    8080: {mode: DISABLE}
`)
	if err != nil {
		t.Fatal(err)
	}
	if pa := res[0].Object.(*securityv1.PeerAuthentication); pa.Spec.PortLevelMtls[8080].GetMode().String() != "DISABLE" {
		t.Errorf("peer authn = %v", &pa.Spec)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct{ name, spec, want string }{
		{"int overflow", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n      weight: 99999999999\n", "invalid 32-bit integer"},
		{"negative uint", "  hosts: [a]\n  http:\n  - match: [{port: -1}]\n    route:\n    - destination: {host: a}\n", "invalid unsigned 32-bit integer"},
		{"bool as string", "  hosts: [a]\n  http:\n  - match: [{ignoreUriCase: \"yes\"}]\n    route:\n    - destination: {host: a}\n", "expected boolean, got string"},
		{"string as number", "  hosts: [a]\n  http:\n  - match: [{headers: {x: {exact: 1}}}]\n    route:\n    - destination: {host: a}\n", "expected string, got integer (quote the value)"},
		{"list for object", "  hosts: [a]\n  http:\n  - route: {destination: {host: a}}\n", "spec.http[0].route: expected list, got object"},
		{"bad duration", "  hosts: [a]\n  http:\n  - timeout: 3 minutes\n    route:\n    - destination: {host: a}\n", "invalid duration \"3 minutes\""},
		{"duplicate key", "  hosts: [a]\n  hosts: [b]\n", "duplicate field \"hosts\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, doc(net1, "VirtualService", c.spec))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}
