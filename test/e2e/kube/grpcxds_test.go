package kube_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds" // registers the xds resolver and balancers
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
)

// grpcCPIP is this test's control plane address (in the package's block).
const grpcCPIP = "127.0.62.5"

// versionService answers UnaryCall with its version as the hostname.
type versionService struct {
	testgrpc.UnimplementedTestServiceServer
	version string
}

func (s *versionService) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: s.version}, nil
}

// kubectlApply applies a YAML file to ns as `kubectl apply -n ns -f` does:
// with kubectl when it is built next to the API server, else by
// server-side apply through client-go's dynamic client (what `weft
// install` uses).
func kubectlApply(t *testing.T, env *kubetest.Env, ns, file string) string {
	t.Helper()
	if kubectl := filepath.Join(kubetest.BinDir(), "kubectl"); fileExists(kubectl) {
		out, err := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "apply", "-n", ns, "-f", file).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply -f %s: %v\n%s", file, err, out)
		}
		return "kubectl"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		o.SetNamespace(ns)
	}
	a, err := install.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), objs, false); err != nil {
		t.Fatalf("applying %s: %v", file, err)
	}
	return "client-go server-side apply"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestGRPCProxylessFromAPIServer: grpc-go's own xDS resolver and
// balancers (an xds:/// target) route by Bookinfo's DestinationRules and
// VirtualService applied from Istio's sample files, to endpoints from
// EndpointSlices and Pods; an edit with client-go changes the routing
// within 1 s.
func TestGRPCProxylessFromAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	applyCRDs(t, env)
	ns := env.Namespace(t, nil)
	kc := env.Client
	ip := hostIP(t)

	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: 9080, TargetPort: intstr.FromInt32(9080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// One grpc-go server, Pod and EndpointSlice per version (a slice's
	// endpoints share its ports).
	for _, v := range []string{"v1", "v2", "v3"} {
		lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(g, &versionService{version: v})
		go g.Serve(lis)
		t.Cleanup(g.Stop)
		pod := "reviews-" + v
		if _, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod, Labels: map[string]string{"app": "reviews", "version": v}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "reviews"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		name, port, yes := "grpc", int32(lis.Addr().(*net.TCPAddr).Port), true
		if _, err := kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: pod, Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: ns}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Istio's own sample YAML, unchanged.
	how := kubectlApply(t, env, ns, filepath.Join("..", "..", "..", "examples", "bookinfo", "destination-rule-all.yaml"))
	kubectlApply(t, env, ns, filepath.Join("..", "..", "..", "examples", "tasks", "request-routing", "virtual-service-reviews-test-v2.yaml"))
	t.Logf("Bookinfo's destination rules and virtual service applied with %s", how)

	sys := env.Namespace(t, nil)
	xdsAddr := net.JoinHostPort(grpcCPIP, strconv.Itoa(freePortOn(t, grpcCPIP)))
	served := make(chan struct{})
	var once sync.Once
	start(t, "weft", func(l string) {
		if strings.Contains(l, "control plane serving") {
			once.Do(func() { close(served) })
		}
	}, "control-plane", "--kubeconfig", env.Kubeconfig, "--system-namespace", sys, "--xds-address", xdsAddr,
		"--secure-address", net.JoinHostPort(grpcCPIP, "0"), "--monitoring-address", net.JoinHostPort(grpcCPIP, "0"), "--debounce", "20ms")
	select {
	case <-served:
	case <-time.After(60 * time.Second):
		t.Fatal("control plane did not start")
	}

	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "sidecar~127.0.0.1~client.%[2]s~%[2]s.svc.cluster.local", "metadata": {"GENERATOR": "grpc"}}
}`, xdsAddr, ns)
	res, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///reviews."+ns+".svc.cluster.local:9080",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(res))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)

	// versions makes n calls (as user, if set) and counts the answers.
	// pending is the failure grpc-go gives while it switches to a route
	// naming a cluster it has not built yet (see
	// test/e2e/grpcxds_routing_test.go switchWindowError): tolerated only
	// while waiting for a change.
	versions := func(n int, user string) (counts map[string]int, pending int, err error) {
		counts = map[string]int{}
		for range n {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if user != "" {
				cctx = metadata.AppendToOutgoingContext(cctx, "end-user", user)
			}
			resp, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{})
			cancel()
			if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), "unknown cluster selected for RPC") {
				pending++
				continue
			}
			if err != nil {
				return counts, pending, err
			}
			counts[resp.GetHostname()]++
		}
		return counts, pending, nil
	}
	until := func(what, user string, within time.Duration, want func(map[string]int) bool) time.Duration {
		t.Helper()
		begin := time.Now()
		var last map[string]int
		for time.Since(begin) < within {
			c, pending, err := versions(20, user)
			if err == nil && pending == 0 && want(c) {
				return time.Since(begin)
			}
			last = c
		}
		t.Fatalf("%s: not within %v (last %v)", what, within, last)
		return 0
	}
	until("jason to v2, others to v1 (Bookinfo's test-v2)", "", 30*time.Second, func(c map[string]int) bool { return c["v1"] == 20 })
	if c, pending, err := versions(40, "jason"); err != nil || pending > 0 || c["v2"] != 40 {
		t.Fatalf("jason: %v (pending %d) %v", c, pending, err)
	}
	if c, pending, err := versions(40, ""); err != nil || pending > 0 || c["v1"] != 40 {
		t.Fatalf("others: %v (pending %d) %v", c, pending, err)
	}

	// An edit with client-go: everyone else to v3.
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := ic.NetworkingV1().VirtualServices(ns).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vs.Spec.Http[1].Route[0].Destination.Subset = "v3"
	if _, err := ic.NetworkingV1().VirtualServices(ns).Update(ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := until("others to v3 after the edit", "", 10*time.Second, func(c map[string]int) bool { return c["v3"] == 20 })
	t.Logf("client-go edit changed grpc-go's routing in %v", took)
	if took > time.Second {
		t.Errorf("edit took %v to take effect, want within 1s", took)
	}
	if c, pending, err := versions(40, "jason"); err != nil || pending > 0 || c["v2"] != 40 {
		t.Errorf("jason after the edit: %v (pending %d) %v", c, pending, err)
	}
}
