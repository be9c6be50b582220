package registry

import (
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

func res(kind config.Kind, obj runtime.Object, ns, name string) *config.Resource {
	return &config.Resource{Kind: kind, Object: obj, Namespace: ns, Name: name, Pos: config.Position{File: name + ".yaml", Line: 1}}
}

func kubeService(ns, name string, sel map[string]string, ports ...corev1.ServicePort) *config.Resource {
	return res(config.KindService, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: sel, Ports: ports},
	}, ns, name)
}

func workloadEntry(ns, name, addr string, labels map[string]string, ports map[string]uint32, sa string) *config.Resource {
	we := &networkingv1.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	we.Spec.Address = addr
	we.Spec.Labels = labels
	we.Spec.Ports = ports
	we.Spec.ServiceAccount = sa
	return res(config.KindWorkloadEntry, we, ns, name)
}

func find(t *testing.T, snap *model.Snapshot, host string) *model.Service {
	t.Helper()
	for _, s := range snap.Services {
		if s.Hostname == host {
			return s
		}
	}
	t.Fatalf("service %s not in snapshot; have %d services", host, len(snap.Services))
	return nil
}

func TestBuildKubeServiceWithWorkloadEntries(t *testing.T) {
	rs := []*config.Resource{
		kubeService("default", "reviews", map[string]string{"app": "reviews"},
			corev1.ServicePort{Name: "grpc", Port: 9080, TargetPort: intstr.FromInt32(9080)}),
		workloadEntry("default", "reviews-v2", "127.0.0.1", map[string]string{"app": "reviews", "version": "v2"}, map[string]uint32{"grpc": 50002}, ""),
		workloadEntry("default", "reviews-v1", "127.0.0.1", map[string]string{"app": "reviews", "version": "v1"}, map[string]uint32{"grpc": 50001}, "reviews"),
		workloadEntry("default", "reviews-v3", "127.0.0.2", map[string]string{"app": "reviews", "version": "v3"}, nil, ""),
		// Another namespace with the same labels must not be selected.
		workloadEntry("other", "reviews-x", "127.0.0.9", map[string]string{"app": "reviews"}, nil, ""),
	}
	snap, err := Build(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, snap, "reviews.default.svc.cluster.local")
	if s.Name != "reviews" || s.Namespace != "default" || len(s.Ports) != 1 || s.Ports[0].Protocol != "GRPC" || s.Ports[0].TargetPort != 9080 {
		t.Fatalf("service = %+v, port %+v", s, s.Ports[0])
	}
	type ep struct {
		addr     string
		port     uint32
		workload string
		tls      string
	}
	want := []ep{
		{"127.0.0.1", 50001, "reviews-v1", "istio"}, // service account → sidecar assumed
		{"127.0.0.1", 50002, "reviews-v2", "disabled"},
		{"127.0.0.2", 9080, "reviews-v3", "disabled"}, // no named port: targetPort
	}
	if len(s.Endpoints) != len(want) {
		t.Fatalf("got %d endpoints, want %d", len(s.Endpoints), len(want))
	}
	for i, w := range want {
		e := s.Endpoints[i]
		got := ep{e.Address, e.Port, e.WorkloadName, e.TLSMode}
		if got != w || e.ServicePort != 9080 || !e.Healthy {
			t.Errorf("endpoint %d = %+v, want %+v", i, got, w)
		}
	}
	if snap.Mesh.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY ||
		snap.Mesh.GetTrustDomain() != "cluster.local" || !snap.Mesh.GetEnableAutoMtls().GetValue() {
		t.Errorf("mesh defaults not applied: %v", snap.Mesh)
	}
}

func TestBuildNamedTargetPortAndAutoRegistered(t *testing.T) {
	rs := []*config.Resource{
		kubeService("shop", "web", map[string]string{"app": "web"},
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web-port")}),
	}
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.10.3", Name: "web-1", Namespace: "shop",
		Labels: map[string]string{"app": "web"}, Ports: []node.Port{{Name: "web-port", Port: 8080, Protocol: "HTTP"}}}
	snap, err := Build(rs, []*Workload{FromMeta(meta)})
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, snap, "web.shop.svc.cluster.local")
	if len(s.Endpoints) != 1 || s.Endpoints[0].Port != 8080 || s.Endpoints[0].TLSMode != "istio" || s.Ports[0].Protocol != "HTTP" {
		t.Fatalf("endpoints = %+v", s.Endpoints)
	}
	if got := ServicesFor(snap, meta); len(got) != 1 || got[0] != s {
		t.Fatalf("ServicesFor = %v", got)
	}
	other := *meta
	other.IP = "127.0.10.4"
	if got := ServicesFor(snap, &other); len(got) != 0 {
		t.Fatalf("ServicesFor(other) = %v, want none", got)
	}
}

func TestBuildServiceEntries(t *testing.T) {
	ext := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "cnn", Namespace: "default"}}
	ext.Spec.Hosts = []string{"edition.cnn.com", "www.cnn.com"}
	ext.Spec.Ports = []*networkingv1alpha3.ServicePort{{Number: 443, Name: "tls", Protocol: "TLS"}}
	ext.Spec.Resolution = networkingv1alpha3.ServiceEntry_DNS

	static := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "data"}}
	static.Spec.Hosts = []string{"db.internal"}
	static.Spec.Addresses = []string{"198.19.0.10"}
	static.Spec.Location = networkingv1alpha3.ServiceEntry_MESH_INTERNAL
	static.Spec.Resolution = networkingv1alpha3.ServiceEntry_STATIC
	static.Spec.ExportTo = []string{"."}
	static.Spec.Ports = []*networkingv1alpha3.ServicePort{{Number: 5432, Name: "tcp", TargetPort: 15432}}
	static.Spec.Endpoints = []*networkingv1alpha3.WorkloadEntry{
		{Address: "198.18.0.2", ServiceAccount: "db"},
		{Address: "198.18.0.1", Ports: map[string]uint32{"tcp": 6000}, Labels: map[string]string{"security.istio.io/tlsMode": "disabled"}},
	}

	none := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "any", Namespace: "default"}}
	none.Spec.Hosts = []string{"*.example.com"}
	none.Spec.Ports = []*networkingv1alpha3.ServicePort{{Number: 80, Name: "http"}}
	none.Spec.Resolution = networkingv1alpha3.ServiceEntry_NONE

	snap, err := Build([]*config.Resource{
		res(config.KindServiceEntry, ext, "default", "cnn"),
		res(config.KindServiceEntry, static, "data", "db"),
		res(config.KindServiceEntry, none, "default", "any"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Services) != 4 {
		t.Fatalf("got %d services, want 4 (one per host)", len(snap.Services))
	}
	// Sorted by hostname.
	for i, h := range []string{"*.example.com", "db.internal", "edition.cnn.com", "www.cnn.com"} {
		if snap.Services[i].Hostname != h {
			t.Errorf("service %d = %s, want %s", i, snap.Services[i].Hostname, h)
		}
	}
	cnn := find(t, snap, "edition.cnn.com")
	if cnn.Resolution != model.DNSLB || !cnn.MeshExternal || len(cnn.Endpoints) != 1 ||
		cnn.Endpoints[0].Address != "edition.cnn.com" || cnn.Endpoints[0].Port != 443 || cnn.Ports[0].Protocol != "TLS" {
		t.Errorf("cnn = %+v endpoints %+v", cnn, cnn.Endpoints)
	}
	db := find(t, snap, "db.internal")
	if db.Resolution != model.ClientSideLB || db.MeshExternal || len(db.ExportTo) != 1 || db.ExportTo[0] != "." ||
		len(db.Addresses) != 1 || db.Ports[0].Protocol != "TCP" {
		t.Errorf("db = %+v", db)
	}
	if len(db.Endpoints) != 2 || db.Endpoints[0].Address != "198.18.0.1" || db.Endpoints[0].Port != 6000 || db.Endpoints[0].TLSMode != "disabled" ||
		db.Endpoints[1].Port != 15432 || db.Endpoints[1].TLSMode != "istio" {
		t.Errorf("db endpoints = %+v %+v", db.Endpoints[0], db.Endpoints[1])
	}
	if s := find(t, snap, "*.example.com"); s.Resolution != model.Passthrough || len(s.Endpoints) != 0 || s.ExportTo[0] != "*" {
		t.Errorf("wildcard = %+v", s)
	}
}

func TestBuildServiceEntryWorkloadSelector(t *testing.T) {
	se := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "vm", Namespace: "vms"}}
	se.Spec.Hosts = []string{"vm.example"}
	se.Spec.Location = networkingv1alpha3.ServiceEntry_MESH_INTERNAL
	se.Spec.Resolution = networkingv1alpha3.ServiceEntry_STATIC
	se.Spec.Ports = []*networkingv1alpha3.ServicePort{{Number: 8080, Name: "http"}}
	se.Spec.WorkloadSelector = &networkingv1alpha3.WorkloadSelector{Labels: map[string]string{"app": "vm"}}
	snap, err := Build([]*config.Resource{
		res(config.KindServiceEntry, se, "vms", "vm"),
		workloadEntry("vms", "vm-1", "198.18.1.1", map[string]string{"app": "vm"}, nil, "vm"),
		workloadEntry("vms", "other", "198.18.1.2", map[string]string{"app": "other"}, nil, ""),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, snap, "vm.example")
	if len(s.Endpoints) != 1 || s.Endpoints[0].WorkloadName != "vm-1" || s.Endpoints[0].Port != 8080 {
		t.Fatalf("endpoints = %+v", s.Endpoints)
	}
}

func TestBuildMeshConfigAndSecrets(t *testing.T) {
	mc := &config.MeshConfig{Spec: &meshv1alpha1.MeshConfig{
		OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY},
		EnableAutoMtls:        wrapperspb.Bool(false),
	}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cred", Namespace: "istio-system"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("CERT"), "tls.key": []byte("KEY")}}
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: "default"}, Data: map[string][]byte{"password": []byte("x")}}
	snap, err := Build([]*config.Resource{
		res(config.KindMeshConfig, mc, "", "mesh"),
		res(config.KindSecret, sec, "istio-system", "cred"),
		res(config.KindSecret, opaque, "default", "opaque"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Mesh.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY ||
		snap.Mesh.GetEnableAutoMtls().GetValue() || snap.Mesh.GetTrustDomain() != "cluster.local" {
		t.Errorf("mesh = %v", snap.Mesh)
	}
	if mc.Spec.TrustDomain != "" {
		t.Errorf("Build modified its input MeshConfig")
	}
	if len(snap.Secrets) != 1 || string(snap.Secrets["istio-system/cred"].CertChain) != "CERT" {
		t.Errorf("secrets = %v", snap.Secrets)
	}
	_, err = Build([]*config.Resource{res(config.KindMeshConfig, mc, "", "a"), res(config.KindMeshConfig, mc, "", "b")}, nil)
	if err == nil {
		t.Errorf("two MeshConfigs accepted")
	}
}

func TestBuildSortsConfig(t *testing.T) {
	vs := func(ns, name string) *config.Resource {
		return res(config.KindVirtualService, &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, ns, name)
	}
	snap, err := Build([]*config.Resource{vs("b", "a"), vs("a", "z"), vs("a", "b")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range snap.VirtualServices {
		got = append(got, v.Namespace+"/"+v.Name)
	}
	if len(got) != 3 || got[0] != "a/b" || got[1] != "a/z" || got[2] != "b/a" {
		t.Fatalf("order = %v", got)
	}
}
