package authz

import (
	"net"
	"net/http"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/samples/extauthz"
)

// startExtAuthz runs our ext-authz sample (HTTP and gRPC) on loopback.
func startExtAuthz(t *testing.T) (httpPort, grpcPort uint32) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: extauthz.HTTP{}}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, &extauthz.GRPC{})
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	return uint32(hl.Addr().(*net.TCPAddr).Port), uint32(gl.Addr().(*net.TCPAddr).Port)
}

// TestExternalAuthorization is Istio's "External Authorization" task: a
// CUSTOM policy on /headers sends those requests to the ext-authz
// service, which allows only "x-ext-authz: allow"; other paths are not
// checked. Over both of Envoy's protocols.
func TestExternalAuthorization(t *testing.T) {
	hp, gp := startExtAuthz(t)
	const host = "ext-authz.foo.svc.cluster.local"
	svc := &model.Service{Hostname: host, Name: "ext-authz", Namespace: "foo",
		Ports: []*model.Port{{Name: "http", Number: 8000, Protocol: "HTTP"}, {Name: "grpc", Number: 9000, Protocol: "GRPC"}},
		Endpoints: []*model.Endpoint{
			{Address: "127.0.0.1", Port: hp, ServicePort: 8000, Healthy: true, TLSMode: "disabled"},
			{Address: "127.0.0.1", Port: gp, ServicePort: 9000, Healthy: true, TLSMode: "disabled"},
		}}
	mesh := &meshv1alpha1.MeshConfig{RootNamespace: "istio-system", ExtensionProviders: []*meshv1alpha1.MeshConfig_ExtensionProvider{
		{Name: "sample-ext-authz-http", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
			Service: host, Port: 8000, IncludeRequestHeadersInCheck: []string{"x-ext-authz"}}}},
		{Name: "sample-ext-authz-grpc", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
			Service: host, Port: 9000}}},
		{Name: "missing", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
			Service: "nowhere.foo.svc.cluster.local", Port: 8000}}},
	}}
	withSvc := func(s *model.Snapshot) { s.Services = append(s.Services, svc) }
	for _, provider := range []string{"sample-ext-authz-http", "sample-ext-authz-grpc"} {
		t.Run(provider, func(t *testing.T) {
			pol := policy(t, "ext-authz", `{selector: {matchLabels: {app: httpbin}}, action: CUSTOM, provider: {name: `+provider+`}, rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`)
			m, _ := build(t, mesh, withSvc, pol)
			code, body := do(t, m, call{target: "/headers", header: []string{"x-ext-authz: deny"}})
			if code != 403 || !strings.Contains(body, "denied by ext_authz") {
				t.Errorf("deny: %d %q", code, body)
			}
			if code, body := do(t, m, call{target: "/headers", header: []string{"x-ext-authz: allow"}}); code != 503 {
				t.Errorf("allow: %d %q (want it through to the absent app: 503)", code, body)
			}
			if code, body := do(t, m, call{target: "/ip"}); code != 503 {
				t.Errorf("unchecked path: %d %q", code, body)
			}
		})
	}
	// CUSTOM before DENY and ALLOW: an ext-authz allow does not override a DENY.
	pols := []*securityv1AP{
		policy(t, "ext-authz", `{action: CUSTOM, provider: {name: sample-ext-authz-http}, rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`),
		policy(t, "deny", `{action: DENY, rules: [{when: [{key: "request.headers[x-block]", values: ["1"]}]}]}`),
	}
	m, _ := build(t, mesh, withSvc, pols...)
	if code, _ := do(t, m, call{target: "/headers", header: []string{"x-ext-authz: allow", "x-block: 1"}}); code != 403 {
		t.Errorf("DENY after CUSTOM allow: %d", code)
	}
	// An unknown provider fails closed for the requests its rules match.
	m, _ = build(t, mesh, withSvc, policy(t, "bad", `{action: CUSTOM, provider: {name: missing}, rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`))
	if allowed(t, m, call{target: "/headers", header: []string{"x-ext-authz: allow"}}) {
		t.Error("CUSTOM with an unresolvable provider must deny")
	}
	if !allowed(t, m, call{target: "/ip"}) {
		t.Error("paths outside the CUSTOM rule are unaffected")
	}
}
