package cli

import (
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	security "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
)

func TestAuthzCheck(t *testing.T) {
	mk := func(name string, action security.AuthorizationPolicy_Action, rules []*security.Rule, ann map[string]string) *securityv1.AuthorizationPolicy {
		ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: ann}}
		ap.Spec.Action = action
		ap.Spec.Rules = rules
		return ap
	}
	get := []*security.Rule{{
		To:   []*security.Rule_To{{Operation: &security.Operation{Methods: []string{"GET"}, Paths: []string{"/api/*"}}}},
		From: []*security.Rule_From{{Source: &security.Source{Principals: []string{"cluster.local/ns/default/sa/curl"}}}},
	}}
	snap := &model.Snapshot{Mesh: &meshv1alpha1.MeshConfig{}, AuthorizationPolicies: []*securityv1.AuthorizationPolicy{
		mk("viewer", security.AuthorizationPolicy_ALLOW, get, nil),
		mk("deny-admin", security.AuthorizationPolicy_DENY, []*security.Rule{{To: []*security.Rule_To{{Operation: &security.Operation{Paths: []string{"/admin"}}}}}}, nil),
		mk("dry", security.AuthorizationPolicy_DENY, []*security.Rule{{}}, map[string]string{"istio.io/dry-run": "true"}),
	}}
	out := translate.Build(snap, &model.Proxy{ID: "x", Meta: &node.Meta{Type: node.Sidecar, IP: "10.0.0.1", Namespace: "default",
		Name: "httpbin", Capture: true, Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}}})
	ld := &adminv3.ListenersConfigDump{}
	for _, l := range out.Listeners {
		a, _ := anypb.New(l)
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: l.Name,
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: a}})
	}
	a, _ := anypb.New(ld)
	var b strings.Builder
	if err := printAuthz(&b, &adminv3.ConfigDump{Configs: []*anypb.Any{a}}, true); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		"DENY    deny-admin.default   1      -        1",
		"DENY    dry.default          1      yes",
		"ALLOW   viewer.default       1      -",
		"requests no ALLOW rule matches are denied",
		`to (method = "GET" and path starts with "/api/"); from peer = "spiffe://cluster.local/ns/default/sa/curl"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
	if strings.Index(s, "deny-admin") > strings.Index(s, "viewer.default") {
		t.Errorf("DENY must be listed before ALLOW:\n%s", s)
	}
}
