// Package kube_test runs `weft control-plane --kubeconfig` against a real
// kube-apiserver (internal/kubetest) and a real weft-proxy gateway: Istio
// objects created with client-go become traffic behaviour, and edits and
// EndpointSlice changes take effect while requests flow.
package kube_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

var binDir string

func TestMain(m *testing.M) {
	// Build the binaries only when the API server can run.
	if kubetest.Binaries(kubetest.BinDir()) == nil {
		binDir = kit.MustBuildTemp("weft-e2e-kube-")
	}
	// Not a defer: kubetest.Main exits (every run left 147 MB of
	// binaries in the temp dir).
	kubetest.Main(m, func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	})
}

// start runs one of the built binaries; onLine sees its output lines.
func start(t *testing.T, bin string, onLine func(string), args ...string) *kit.Proc {
	t.Helper()
	return kit.Command{Path: filepath.Join(binDir, bin), Args: args, OnLine: onLine}.Start(t)
}

// applyCRDs installs Istio's CRDs (as weft install does) on env.
func applyCRDs(t *testing.T, env *kubetest.Env) {
	t.Helper()
	a, err := install.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := install.Decode(install.CRDs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), crds, false); err != nil {
		t.Fatal(err)
	}
}

// hostIP is a non-loopback address of this machine: an EndpointSlice may
// not hold a loopback address, so backends listen here.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address for the backends")
	return ""
}

// backend answers with its name, on ip.
func backend(t *testing.T, ip, name string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestGatewayFromAPIServer: the control plane runs as a process with
// --kubeconfig; a weft-proxy gateway routes by a Gateway and VirtualService
// created with client-go to endpoints from an EndpointSlice. An edit of the
// VirtualService and of the EndpointSlice each take effect while requests
// flow; the time each took is logged.
func TestGatewayFromAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	applyCRDs(t, env)
	ns := env.Namespace(t, nil)
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ip := hostIP(t)
	one, two := backend(t, ip, "one"), backend(t, ip, "two")

	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	portName, port, ready := "http", int32(one), true
	slice, err := env.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw"}}
	gw.Spec.Selector = map[string]string{"istio": "ingressgateway"}
	gw.Spec.Servers = []*networkingapi.Server{{Port: &networkingapi.Port{Number: 8080, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}}
	if _, err := ic.NetworkingV1().Gateways(ns).Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	vs.Spec.Hosts = []string{"*"}
	vs.Spec.Gateways = []string{"gw"}
	vs.Spec.Http = []*networkingapi.HTTPRoute{{
		Route: []*networkingapi.HTTPRouteDestination{{
			Destination: &networkingapi.Destination{Host: "web", Port: &networkingapi.PortSelector{Number: 80}},
			Headers:     &networkingapi.Headers{Response: &networkingapi.Headers_HeaderOperations{Set: map[string]string{"x-edit": "first"}}},
		}},
	}}
	if vs, err = ic.NetworkingV1().VirtualServices(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	sys := env.Namespace(t, nil)
	xds := "127.0.0.1:" + strconv.Itoa(kit.FreePort(t))
	served := make(chan struct{})
	var once sync.Once
	start(t, "weft", func(l string) {
		if strings.Contains(l, "control plane serving") {
			once.Do(func() { close(served) })
		}
	}, "control-plane", "--kubeconfig", env.Kubeconfig, "--system-namespace", sys, "--xds-address", xds, "--secure-address", "127.0.0.1:0", "--monitoring-address", "127.0.0.1:0", "--debounce", "20ms")
	select {
	case <-served:
	case <-time.After(60 * time.Second):
		t.Fatal("control plane did not start")
	}
	// The leader publishes the root of the istio-ca-secret it created to
	// every namespace.
	caSecret, err := env.Client.CoreV1().Secrets(sys).Get(ctx, "istio-ca-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CA secret: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err == nil && cm.Data["root-cert.pem"] == string(caSecret.Data["root-cert.pem"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("istio-ca-root-cert not published to %s: %v", ns, err)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	// The leader marks the VirtualService it serves Reconciled.
	for deadline := time.Now().Add(30 * time.Second); ; {
		cur, err := ic.NetworkingV1().VirtualServices(ns).Get(ctx, "web", metav1.GetOptions{})
		if err == nil && len(cur.Status.Conditions) > 0 && cur.Status.Conditions[0].Status == "True" && cur.Status.ObservedGeneration == cur.Generation {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Reconciled status on the VirtualService: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	gwPort := kit.FreePort(t)
	start(t, "weft-proxy", nil, "router", "--xds", xds, "--namespace", ns, "--name", "ingress", "--labels", "istio=ingressgateway",
		"--ip", "127.0.0.1", "--port-map", "8080="+strconv.Itoa(gwPort), "--admin-port", "0", "--health-port", "0", "--stats-port", "0", "--merged-port", "0")

	get := func() (string, string) {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(gwPort) + "/")
		if err != nil {
			return "", err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("x-edit"), fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	// until polls requests until want is seen and returns how long it took.
	until := func(what string, want func(edit, body string) bool) time.Duration {
		t.Helper()
		begin := time.Now()
		var edit, body string
		for time.Since(begin) < 30*time.Second {
			if edit, body = get(); want(edit, body) {
				return time.Since(begin)
			}
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
		t.Fatalf("%s: last response x-edit=%q %q", what, edit, body)
		return 0
	}
	until("gateway routes to backend one", func(e, b string) bool { return e == "first" && b == "200 one" })

	if vs, err = ic.NetworkingV1().VirtualServices(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	vs.Spec.Http[0].Route[0].Headers.Response.Set["x-edit"] = "second"
	if _, err := ic.NetworkingV1().VirtualServices(ns).Update(ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := until("VirtualService edit takes effect", func(e, b string) bool { return e == "second" && b == "200 one" })
	t.Logf("VirtualService edit took effect in %v", took)
	if took > time.Second {
		t.Errorf("VirtualService edit took %v, want within 1s", took)
	}

	*slice.Ports[0].Port = int32(two)
	if _, err := env.Client.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took = until("EndpointSlice change takes effect", func(e, b string) bool { return b == "200 two" })
	t.Logf("EndpointSlice change took effect in %v", took)
	if took > time.Second {
		t.Errorf("EndpointSlice change took %v, want within 1s", took)
	}
}
