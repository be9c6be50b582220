package kube_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/store"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/node"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var crdOnce sync.Once

// installCRDs applies Istio's CRDs as `weft install` renders them and
// checks the API server accepts and establishes every one.
func installCRDs(t *testing.T, env *kubetest.Env) {
	t.Helper()
	var err error
	crdOnce.Do(func() {
		var a *install.Applier
		if a, err = install.NewApplier(env.Config); err != nil {
			return
		}
		objs, derr := install.Decode(install.CRDs)
		if derr != nil {
			err = derr
			return
		}
		var res []install.Result
		res, err = a.Apply(context.Background(), objs, false)
		if err == nil && len(res) != 15 {
			t.Errorf("applied %d CRDs, want 15", len(res))
		}
	})
	if err != nil {
		t.Fatalf("installing Istio's CRDs: %v", err)
	}
}

func TestCRDsAccepted(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	a, err := install.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := install.Decode(install.CRDs)
	for _, f := range a.Check(context.Background(), objs) {
		if !f.OK {
			t.Errorf("%s", f)
		}
	}
}

// inNamespaces keeps the resources of the given namespaces (and their
// Namespace objects): the shared API server holds other tests' objects.
func inNamespaces(rs []*config.Resource, nss ...string) []*config.Resource {
	var out []*config.Resource
	for _, r := range rs {
		ns := r.Namespace
		if r.Kind == config.KindNamespace {
			ns = r.Name
		}
		if slices.Contains(nss, ns) {
			out = append(out, r)
		}
	}
	return out
}

// TestSameXDSFromFilesAndAPIServer runs one scenario from a directory and
// from the API server and compares every proxy's xDS output.
func TestSameXDSFromFilesAndAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	data, err := os.ReadFile("testdata/scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scenario.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range d.Status() {
		if len(st.Errors) > 0 {
			t.Fatalf("scenario does not load from files: %v", st.Errors)
		}
	}
	fileSnap, err := registry.Build(d.Resources(), nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	a, err := install.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, objs, false); err != nil {
		t.Fatalf("applying the scenario: %v", err)
	}
	src, err := kube.New(ctx, kube.Options{Config: env.Config, SystemNamespace: "golden-system"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, inv := range src.Invalid() {
		if inv.Key.Namespace == "golden" || inv.Key.Namespace == "golden-system" {
			t.Fatalf("object rejected: %s: %v", inv.Key, inv.Errors)
		}
	}
	kubeSnap, err := registry.Build(inNamespaces(src.Resources(), "golden", "golden-system"), nil)
	if err != nil {
		t.Fatal(err)
	}

	proxies := []*node.Meta{
		{Type: node.Sidecar, IP: "10.1.0.9", Name: "productpage-v1", Namespace: "golden", ServiceAccount: "productpage", Labels: map[string]string{"app": "productpage"}},
		{Type: node.Sidecar, IP: "10.1.0.3", Name: "ratings-v1", Namespace: "golden", ServiceAccount: "default", Labels: map[string]string{"app": "ratings", "version": "v1"}, Capture: true},
		{Type: node.Router, IP: "10.1.0.20", Name: "ingress", Namespace: "golden", Labels: map[string]string{"istio": "ingressgateway"}},
		{Type: node.Sidecar, IP: "10.1.0.30", Name: "grpc-client", Namespace: "golden", Generator: "grpc"},
	}
	total := 0
	for _, m := range proxies {
		// Each proxy as if it proved its metadata's identity on 15012:
		// gateway credentials follow the verified identity.
		id := &meshtls.Identity{TrustDomain: meshtls.DefaultTrustDomain, Namespace: m.Namespace, ServiceAccount: m.ServiceAccount}
		fileOut := translate.Build(fileSnap, &model.Proxy{Meta: m, ID: m.ID(), Identity: id, Services: registry.ServicesFor(fileSnap, m)})
		kubeOut := translate.Build(kubeSnap, &model.Proxy{Meta: m, ID: m.ID(), Identity: id, Services: registry.ServicesFor(kubeSnap, m)})
		lists := func(o *translate.Output) map[string][]proto.Message {
			return map[string][]proto.Message{
				"listeners": msgs(o.Listeners), "routes": msgs(o.Routes), "clusters": msgs(o.Clusters),
				"endpoints": msgs(o.Endpoints), "secrets": msgs(o.Secrets),
			}
		}
		fl, kl := lists(fileOut), lists(kubeOut)
		for typ, f := range fl {
			k := kl[typ]
			total += len(f)
			if len(f) != len(k) {
				t.Errorf("%s %s: %d from files, %d from the API server", m.Name, typ, len(f), len(k))
				continue
			}
			for i := range f {
				if !proto.Equal(f[i], k[i]) {
					t.Errorf("%s %s[%d] differs:\nfiles: %s\nkube:  %s", m.Name, typ, i, protojson.Format(f[i]), protojson.Format(k[i]))
				}
			}
		}
		if m.Type == node.Router && len(kubeOut.Secrets) != 1 {
			t.Errorf("the gateway got %d secrets, want its web-cert", len(kubeOut.Secrets))
		}
	}
	if total < 20 {
		t.Fatalf("only %d resources compared: the scenario did not translate", total)
	}
}

func msgs[T proto.Message](s []T) []proto.Message {
	out := make([]proto.Message, len(s))
	for i, m := range s {
		out[i] = m
	}
	return out
}

// controlPlane runs the control plane in Kubernetes mode.
func controlPlane(t *testing.T, env *kubetest.Env) *server.Server {
	t.Helper()
	return controlPlaneWith(t, env, server.Options{})
}

// controlPlaneWith starts a Kubernetes-mode control plane with opts plus
// the test defaults (plaintext xDS, monitoring on port 0, short debounce).
func controlPlaneWith(t *testing.T, env *kubetest.Env, opts server.Options) *server.Server {
	t.Helper()
	opts.XDSAddress, opts.MonitoringAddress, opts.Debounce = "127.0.0.1:0", "127.0.0.1:0", 10*time.Millisecond
	opts.NewSource = func(onChange func()) (store.Source, error) {
		return kube.New(context.Background(), kube.Options{Config: env.Config, OnChange: onChange})
	}
	s, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

func waitFor(t *testing.T, c *meshtest.XDSClient, what string, cond func(*meshtest.XDSClient) bool) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(start)
}

// TestEndpointSlicesToEDS: a Service with EndpointSlices and Pods reaches a
// proxy as EDS, and slice changes update it.
func TestEndpointSlicesToEDS(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	kc := env.Client
	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo-reviews"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, ip := range []string{"10.2.0.1", "10.2.0.2"} {
		p, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: []string{"reviews-a", "reviews-b"}[i], Labels: map[string]string{"app": "reviews", "version": "v1", "security.istio.io/tlsMode": "istio"}},
			Spec:       corev1.PodSpec{ServiceAccountName: "bookinfo-reviews", Containers: []corev1.Container{{Name: "app", Image: "reviews"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if _, err := kc.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	name, port, yes := "http", int32(9081), true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "reviews-1", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.2.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-a", Namespace: ns}},
			{Addresses: []string{"10.2.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-b", Namespace: ns}},
		},
	}
	slice, err := kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	s := controlPlane(t, env)
	c, err := meshtest.DialXDS(s.XDSAddr(), &node.Meta{Type: node.Sidecar, IP: "10.2.0.9", Name: "productpage", Namespace: ns, Labels: map[string]string{"app": "productpage"}}, meshtest.XDSClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cluster := "outbound|9080||reviews." + ns + ".svc.cluster.local"
	addrs := func(c *meshtest.XDSClient) []string {
		cla, _ := c.Resources(resource.EndpointType)[cluster].(*endpointv3.ClusterLoadAssignment)
		var out []string
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, sa.GetAddress()+":"+itoa(sa.GetPortValue()))
			}
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, c, "both pods in EDS", func(c *meshtest.XDSClient) bool {
		return slices.Equal(addrs(c), []string{"10.2.0.1:9081", "10.2.0.2:9081"})
	})
	// The registry knows the pods' service account and tlsMode.
	for _, svc := range s.XDS().Snapshot().Services {
		if svc.Hostname == "reviews."+ns+".svc.cluster.local" {
			for _, e := range svc.Endpoints {
				if e.ServiceAccount != "bookinfo-reviews" || e.TLSMode != "istio" || e.Labels["version"] != "v1" {
					t.Errorf("endpoint lacks pod details: %+v", e)
				}
			}
		}
	}

	slice.Endpoints = slice.Endpoints[1:]
	if _, err := kc.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, c, "removed endpoint leaves EDS", func(c *meshtest.XDSClient) bool {
		return slices.Equal(addrs(c), []string{"10.2.0.2:9081"})
	})
	t.Logf("EndpointSlice update reached the proxy in %v", took)
	if err := kc.CoreV1().Services(ns).Delete(ctx, "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "deleted service leaves CDS", func(c *meshtest.XDSClient) bool {
		_, ok := c.Resources(resource.ClusterType)[cluster]
		return !ok
	})
}

func itoa(u uint32) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + u%10)}, b...)
		u /= 10
		if u == 0 {
			return string(b)
		}
	}
}

// TestSecretsStayInTheirNamespace: a gateway credential in namespace A is
// never served to a gateway of namespace B, even when B's Gateway names it.
func TestSecretsStayInTheirNamespace(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	nsA, nsB := env.Namespace(t, nil), env.Namespace(t, nil)
	ctx := context.Background()
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{nsA, nsB} {
		gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: ns}}
		gw.Spec.Selector = map[string]string{"istio": "ingressgateway"}
		gw.Spec.Servers = []*networkingapi.Server{{
			Port:  &networkingapi.Port{Number: 8443, Name: "https", Protocol: "HTTPS"},
			Hosts: []string{"*"},
			Tls:   &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE, CredentialName: "cred"},
		}}
		if _, err := ic.NetworkingV1().Gateways(ns).Create(ctx, gw, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Real key pairs: a credential that does not parse is never served.
	certA, keyA := selfSignedPEM(t, "a.example.com")
	certB, keyB := selfSignedPEM(t, "b.example.com")
	certO, keyO := selfSignedPEM(t, "other.example.com")
	if _, err := env.Client.CoreV1().Secrets(nsA).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cred"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certA, "tls.key": keyA},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An unreferenced Secret is never even cached.
	if _, err := env.Client.CoreV1().Secrets(nsA).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "other"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certO, "tls.key": keyO},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	s := controlPlaneWith(t, env, server.Options{SecureAddress: "127.0.0.1:0"})
	types := append(slices.Clone(meshtest.DefaultXDSTypes), resource.SecretType)
	// Credentials follow the caller's verified identity, so each gateway
	// connects over mutual TLS with a certificate for its namespace.
	dial := func(ns string) *meshtest.XDSClient {
		c, err := meshtest.DialXDS(s.SecureAddr(), &node.Meta{Type: node.Router, IP: "10.3.0.1", Name: "ingress", Namespace: ns,
			ServiceAccount: "gw", Labels: map[string]string{"istio": "ingressgateway"}},
			meshtest.XDSClientOptions{Types: types, DialOptions: []grpc.DialOption{mtlsAs(t, s, ns, "gw")}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	a, b := dial(nsA), dial(nsB)
	certOf := func(c *meshtest.XDSClient) string {
		sec, _ := c.Resources(resource.SecretType)["kubernetes://cred"].(*tlsv3.Secret)
		return string(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	}
	waitFor(t, a, "A's gateway gets A's secret", func(c *meshtest.XDSClient) bool { return certOf(c) == string(certA) })
	waitFor(t, b, "B's gateway gets its listeners", func(c *meshtest.XDSClient) bool { return c.Version(resource.ListenerType) != "" })
	if got := certOf(b); got != "" {
		t.Fatalf("namespace B's gateway was served %q from namespace A", got)
	}
	for _, r := range s.XDS().Snapshot().Secrets {
		if r.Name == "other" {
			t.Fatal("an unreferenced Secret reached the registry")
		}
	}
	// B's own secret goes to B only.
	if _, err := env.Client.CoreV1().Secrets(nsB).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cred"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certB, "tls.key": keyB},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, "B's gateway gets B's secret", func(c *meshtest.XDSClient) bool { return certOf(c) == string(certB) })
	if got := certOf(a); got != string(certA) {
		t.Fatalf("namespace A's gateway now has %q", got)
	}
}

// TestInvalidObjectNotServed: an Istio object that fails validation (the
// API server's CRD schema is looser than Istio's webhook) is not served.
func TestInvalidObjectNotServed(t *testing.T) {
	env := kubetest.Shared(t)
	installCRDs(t, env)
	ns := env.Namespace(t, nil)
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}}
	vs.Spec.Hosts = []string{"reviews"}
	vs.Spec.Http = []*networkingapi.HTTPRoute{{}} // a route with no destination
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(context.Background(), vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := kube.New(context.Background(), kube.Options{Config: env.Config})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, r := range src.Resources() {
		if r.Kind == config.KindVirtualService && r.Namespace == ns {
			t.Fatal("invalid VirtualService served")
		}
	}
	found := false
	for _, inv := range src.Invalid() {
		found = found || (inv.Key.Namespace == ns && inv.Key.Name == "bad" && len(inv.Errors) > 0)
	}
	if !found {
		t.Fatalf("invalid VirtualService not reported: %+v", src.Invalid())
	}
}

// startStatusWriter runs a source on env and the leader's status writer
// over it until ctx ends; it returns both and the dynamic client to read
// status with.
func startStatusWriter(ctx context.Context, t *testing.T, env *kubetest.Env) (*kube.Source, dynamic.Interface) {
	t.Helper()
	src, err := kube.New(ctx, kube.Options{Config: env.Config})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	go kube.WriteStatus(ctx, src, dyn, nil)
	return src, dyn
}
