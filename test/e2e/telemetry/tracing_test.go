package telemetry

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestTracingAcrossSidecars: with an OpenTelemetry provider in MeshConfig
// (sampling 100%), a request from curl to httpbin yields a CLIENT span from
// curl's sidecar and a SERVER span from httpbin's, child of the first, in
// the app's trace, exported over OTLP/HTTP through the collector's cluster.
func TestTracingAcrossSidecars(t *testing.T) {
	m := mesh(t)
	rc := meshtest.NewTraceCollector()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	meshFile := filepath.Join(m.ConfigDir(), "mesh.yaml")
	orig, err := os.ReadFile(meshFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(meshFile, orig, 0o644) })
	if err := os.WriteFile(meshFile, []byte(`apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}
  accessLogFile: /dev/stdout
  defaultConfig:
    tracing: {sampling: 100}
  defaultProviders:
    tracing: [otel]
  extensionProviders:
  - name: otel
    opentelemetry:
      service: otel-collector.observability.svc.cluster.local
      port: 4318
      http: {path: /v1/traces}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	weft.Apply(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 4318, name: http-otlp, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http-otlp: %d}}]
`, port))

	curl := kit.ViaSidecar(m, "curl")
	defer func() {
		if t.Failed() {
			for _, w := range []string{"curl", "httpbin-v1"} {
				st := kit.Get(t, kit.Direct, m.Workload(w).AdminURL()+"/stats?filter=tracing", nil)
				t.Logf("%s tracing stats:\n%s", w, st.Body)
			}
		}
	}()
	tid, _ := hex.DecodeString("5af7183fb1d4cf5f5af7183fb1d4cf5f")
	appSpan := "b7ad6b7169203331"
	var client, server *tracev1.Span
	// Config propagates eventually; each try is a new request in the trace.
	meshtest.Eventually(t, "spans from both sidecars", 30*time.Second, func() error {
		curl.CloseIdleConnections()
		r := kit.Get(t, curl, "http://httpbin:8000/get", map[string]string{"traceparent": "00-" + hex.EncodeToString(tid) + "-" + appSpan + "-01"})
		if r.Status != 200 {
			return fmt.Errorf("status %d", r.Status)
		}
		clients := map[string]*tracev1.Span{}
		for _, sp := range rc.Spans("curl.default") {
			if bytes.Equal(sp.GetTraceId(), tid) {
				clients[hex.EncodeToString(sp.GetSpanId())] = sp
			}
		}
		for _, sp := range rc.Spans("httpbin.default") {
			if c := clients[hex.EncodeToString(sp.GetParentSpanId())]; c != nil && bytes.Equal(sp.GetTraceId(), tid) {
				client, server = c, sp
				return nil
			}
		}
		var have []string
		for svc, ss := range rc.All() {
			for _, sp := range ss {
				have = append(have, fmt.Sprintf("%s %v %x parent %x", svc, sp.GetKind(), sp.GetTraceId(), sp.GetParentSpanId()))
			}
		}
		return fmt.Errorf("no server span under a client span yet; received %v", have)
	})
	if t.Failed() {
		return
	}
	if hex.EncodeToString(client.GetParentSpanId()) != appSpan {
		t.Errorf("client span's parent %x, want the app's %s", client.GetParentSpanId(), appSpan)
	}
	if client.GetKind() != tracev1.Span_SPAN_KIND_CLIENT || client.GetName() != "httpbin.default.svc.cluster.local:8000/*" {
		t.Errorf("client span kind %v name %q", client.GetKind(), client.GetName())
	}
	// Named after the destination service and port, as Istio's inbound
	// route decorator does, not after the caller's Host.
	if server.GetKind() != tracev1.Span_SPAN_KIND_SERVER || server.GetName() != "httpbin.default.svc.cluster.local:8000/*" {
		t.Errorf("server span kind %v name %q", server.GetKind(), server.GetName())
	}

	// x-envoy-decorator-operation: with a route matching /get* on the
	// caller's side, the caller's sidecar sends that operation and the
	// server's sidecar names its span after it (Envoy's ingress override),
	// not after its own inbound route ("httpbin...:8000/*").
	weft.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-decorator}
spec:
  hosts: [httpbin]
  http:
  - match: [{uri: {prefix: /get}}]
    route: [{destination: {host: httpbin}}]
  - route: [{destination: {host: httpbin}}]
`)
	const op = "httpbin.default.svc.cluster.local:8000/get*"
	tid2, _ := hex.DecodeString("6af7183fb1d4cf5f5af7183fb1d4cf5f")
	meshtest.Eventually(t, "server span named by the caller's route", 30*time.Second, func() error {
		curl.CloseIdleConnections()
		if r := kit.Get(t, curl, "http://httpbin:8000/get", map[string]string{"traceparent": "00-" + hex.EncodeToString(tid2) + "-" + appSpan + "-01"}); r.Status != 200 {
			return fmt.Errorf("status %d", r.Status)
		}
		var names []string
		for _, sp := range rc.Spans("httpbin.default") {
			if bytes.Equal(sp.GetTraceId(), tid2) {
				if sp.GetName() == op {
					return nil
				}
				names = append(names, sp.GetName())
			}
		}
		return fmt.Errorf("server spans of the trace named %q, want %q", names, op)
	})
}
