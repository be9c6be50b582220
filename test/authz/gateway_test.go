package authz

import (
	"encoding/json"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/route"
)

func gatewayObjects(t testing.TB) (*networkingv1.Gateway, *networkingv1.VirtualService) {
	gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "httpbin-gateway", Namespace: "default"}}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "httpbin", Namespace: "default"}}
	for _, x := range []struct {
		spec string
		into any
	}{
		{`{selector: {istio: ingressgateway}, servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]}`, &gw.Spec},
		{`{hosts: ["*"], gateways: [httpbin-gateway], http: [{route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]}]}`, &vs.Spec},
	} {
		var v any
		if err := yaml.Unmarshal([]byte(x.spec), &v); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(v)
		if err := protojson.Unmarshal(j, x.into.(proto.Message)); err != nil {
			t.Fatal(err)
		}
	}
	return gw, vs
}

// ingress translates for the ingress gateway and compiles its 8080 HCM.
func ingress(t testing.TB, mesh *meshv1alpha1.MeshConfig, pols ...*securityv1.AuthorizationPolicy) *hcm.Manager {
	t.Helper()
	gw, vs := gatewayObjects(t)
	snap := &model.Snapshot{Mesh: mesh, AuthorizationPolicies: pols,
		Gateways: []*networkingv1.Gateway{gw}, VirtualServices: []*networkingv1.VirtualService{vs}}
	p := &model.Proxy{ID: "ingress", Meta: &node.Meta{Type: node.Router, IP: "198.18.1.1", Name: "istio-ingressgateway", Namespace: "istio-system",
		Labels: map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}, Capture: true}}
	return gatewayManager(t, translate.Build(snap, p))
}

// gatewayManager compiles the gateway's first HTTP connection manager.
func gatewayManager(t testing.TB, out *translate.Output) *hcm.Manager {
	t.Helper()
	e := &env{tables: map[string]*route.Table{}}
	for _, rc := range out.Routes {
		tb, err := route.Compile(rc)
		if err != nil {
			t.Fatal(err)
		}
		e.tables[rc.Name] = tb
	}
	for _, l := range out.Listeners {
		for _, fc := range l.GetFilterChains() {
			cfg := &hcmv3.HttpConnectionManager{}
			if fc.GetFilters()[len(fc.GetFilters())-1].GetTypedConfig().UnmarshalTo(cfg) != nil {
				continue
			}
			m, err := hcm.New(cfg, e, hcm.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no gateway HCM in %v", names(out.Listeners))
	return nil
}

// TestIngressRemoteIPBlocks is Istio's "Authorization on ingress gateway":
// an ALLOW with remoteIpBlocks at the gateway judges the client address,
// from x-forwarded-for only as far as numTrustedProxies allows.
func TestIngressRemoteIPBlocks(t *testing.T) {
	pol := policy(t, "ingress-policy", `{selector: {matchLabels: {app: istio-ingressgateway}}, action: ALLOW, rules: [{from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]}]}`)
	pol.Namespace = "istio-system"
	// No trusted proxy in front: the peer address is the client; a forged
	// x-forwarded-for changes nothing.
	m := ingress(t, &meshv1alpha1.MeshConfig{RootNamespace: "istio-system"}, pol)
	if !allowed(t, m, call{target: "/headers", host: "httpbin.example.com", peer: "203.0.113.9:4000"}) {
		t.Error("client in the block refused")
	}
	if allowed(t, m, call{target: "/headers", host: "httpbin.example.com", peer: "198.51.100.1:4000", header: []string{"X-Forwarded-For: 203.0.113.9"}}) {
		t.Error("forged x-forwarded-for accepted with numTrustedProxies 0")
	}
	// One trusted load balancer in front.
	mesh := &meshv1alpha1.MeshConfig{RootNamespace: "istio-system", DefaultConfig: &meshv1alpha1.ProxyConfig{
		GatewayTopology: &meshv1alpha1.Topology{NumTrustedProxies: 1}}}
	m = ingress(t, mesh, pol)
	if !allowed(t, m, call{target: "/headers", host: "httpbin.example.com", peer: "10.0.0.2:4000", header: []string{"X-Forwarded-For: 203.0.113.9"}}) {
		t.Error("client behind one trusted proxy refused")
	}
	if allowed(t, m, call{target: "/headers", host: "httpbin.example.com", peer: "10.0.0.2:4000", header: []string{"X-Forwarded-For: 203.0.113.9, 198.51.100.1"}}) {
		t.Error("the address the trusted proxy saw is the client, not a forged earlier entry")
	}
}

// TestClaimRouting is Istio's claim-based routing at the ingress gateway:
// a VirtualService header match on @request.auth.claims.group routes on
// the verified token's claim (the gateway re-matches the route after
// jwt_authn); without a token the claim routes never match.
func TestClaimRouting(t *testing.T) {
	s := newSigner(t)
	gw, _ := gatewayObjects(t)
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "claims", Namespace: "default"}}
	spec := `{hosts: ["*"], gateways: [httpbin-gateway], http: [
  {match: [{headers: {"@request.auth.claims.group": {exact: group1}}}], directResponse: {status: 200, body: {string: "group1 route"}}},
  {match: [{headers: {"@request.auth.claims.nested.level": {prefix: "gold"}}}], directResponse: {status: 200, body: {string: "gold route"}}},
  {directResponse: {status: 200, body: {string: "default route"}}}]}`
	var v any
	if err := yaml.Unmarshal([]byte(spec), &v); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(v)
	if err := protojson.Unmarshal(j, &vs.Spec); err != nil {
		t.Fatal(err)
	}
	ra := requestAuthn(t, `{selector: {matchLabels: {istio: ingressgateway}}, jwtRules: [{issuer: "`+iss+`", jwks: '`+s.jwks+`'}]}`)
	ra.Namespace = "istio-system"
	snap := &model.Snapshot{Mesh: &meshv1alpha1.MeshConfig{RootNamespace: "istio-system"},
		Gateways: []*networkingv1.Gateway{gw}, VirtualServices: []*networkingv1.VirtualService{vs},
		RequestAuthentications: []*securityv1.RequestAuthentication{ra}}
	p := &model.Proxy{ID: "ingress", Meta: &node.Meta{Type: node.Router, IP: "198.18.1.1", Name: "istio-ingressgateway", Namespace: "istio-system",
		Labels: map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}, Capture: true}}
	m := gatewayManager(t, translate.Build(snap, p))
	for _, tc := range []struct {
		hdr  []string
		want string
	}{
		{[]string{"Authorization: Bearer " + s.token(t, map[string]any{"group": "group1"})}, "group1 route"},
		{[]string{"Authorization: Bearer " + s.token(t, map[string]any{"group": []string{"group2", "group1"}})}, "group1 route"},
		{[]string{"Authorization: Bearer " + s.token(t, map[string]any{"nested": map[string]any{"level": "gold-plus"}})}, "gold route"},
		{[]string{"Authorization: Bearer " + s.token(t, map[string]any{"group": "group2"})}, "default route"},
		{nil, "default route"},
	} {
		code, body := do(t, m, call{target: "/headers", host: "httpbin.example.com", header: tc.hdr})
		if code != 200 || body != tc.want {
			t.Errorf("%.60v: %d %q, want %q", tc.hdr, code, body, tc.want)
		}
	}
}
