package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds" // registers the xds resolver and balancers

	"github.com/weftmesh/weft/test/e2e/kit"
)

// versionServer is a real grpc-go server that answers with its version.
type versionServer struct {
	testgrpc.UnimplementedTestServiceServer
	version string
}

func (s *versionServer) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: s.version}, nil
}

func startVersionServer(t *testing.T, version string) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(g, &versionServer{version: version})
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

const grpcReviewsService = `apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
spec:
  selector:
    app: reviews
  ports:
  - name: grpc
    port: 9080
    targetPort: 9080
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
`

func grpcWorkloadEntry(version string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-%[1]s
spec:
  address: 127.0.0.1
  labels: {app: reviews, version: %[1]s}
  ports: {grpc: %[2]d}
`, version, port)
}

const vs8020 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
`

const vsHeader = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination: {host: reviews, subset: v3}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
`

// subsetCluster names the cluster of a reviews subset.
func subsetCluster(subset string) string {
	return "outbound|9080|" + subset + "|reviews.default.svc.cluster.local"
}

// callVersions makes n calls and counts which version answered. Every
// call must succeed: this is for a settled configuration.
func callVersions(t *testing.T, c testgrpc.TestServiceClient, n int, user string) map[string]int {
	t.Helper()
	counts, _ := callBatch(t, c, n, user, nil)
	return counts
}

// callBatch makes n calls and counts which version answered. A call that
// fails with switchWindowError for one of the clusters in added is
// counted in the second result; any other failure ends the test.
func callBatch(t *testing.T, c testgrpc.TestServiceClient, n int, user string, added []string) (map[string]int, int) {
	t.Helper()
	counts, dropped := map[string]int{}, 0
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if user != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "end-user", user)
		}
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			if switchWindowError(err, added) {
				dropped++
				continue
			}
			t.Fatalf("call %d: %v", i, err)
		}
		counts[resp.GetHostname()]++
	}
	return counts, dropped
}

// switchWindowError reports whether err is the failure grpc-go (1.85)
// itself produces for an RPC that races its switch to a route config
// naming a cluster the channel had no xds_cluster_manager child for:
// ClientConn installs the resolver's new config selector before the
// balancer has built the new child and published a picker that knows it
// (clientconn.go updateResolverStateAndUnlock, then
// xds/balancer/clustermanager picker.go), and such a pick error is a drop
// that is never retried. It happens after grpc-go has received and
// resolved every cluster and endpoint the route names, so the control
// plane cannot prevent it; it is accepted only for the clusters the edit
// adds and only while waiting for the edit to take effect.
func switchWindowError(err error, added []string) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	for _, c := range added {
		if st.Message() == fmt.Sprintf("unknown cluster selected for RPC: %q", "cluster:"+c) {
			return true
		}
	}
	return false
}

// waitBehaviour polls with small batches until cond holds for a batch
// without switch-window failures (see switchWindowError; added names the
// clusters the edit introduces), returning how long it took.
func waitBehaviour(t *testing.T, c testgrpc.TestServiceClient, what, user string, added []string, within time.Duration, cond func(map[string]int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within + 3*time.Second) // report the real time if slow
	var last map[string]int
	total := 0
	for time.Now().Before(deadline) {
		var dropped int
		last, dropped = callBatch(t, c, 30, user, added)
		total += dropped
		if dropped == 0 && cond(last) {
			if total > 0 {
				t.Logf("%s: %d calls raced grpc-go's switch to the new clusters (unknown cluster selected)", what, total)
			}
			return time.Since(start)
		}
	}
	t.Fatalf("%s: not seen after %v; last batch %v", what, time.Since(start), last)
	return 0
}

func TestGRPCProxylessRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	dir := t.TempDir()
	kit.WriteConfig(t, dir, "reviews.yaml", grpcReviewsService)
	for _, v := range []string{"v1", "v2", "v3"} {
		kit.WriteConfig(t, dir, "reviews-"+v+".yaml", grpcWorkloadEntry(v, startVersionServer(t, v)))
	}
	cp := cpStart(t, dir, "--debounce", "50ms")

	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "sidecar~127.0.0.1~client.default~default.svc.cluster.local", "metadata": {"GENERATOR": "grpc"}}
}`, cp.XDS)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///reviews.default.svc.cluster.local:9080",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	conn.Connect()

	// grpc-go subscribes on its own; wait until it ACKed every type, and
	// fail with its error_detail if it rejected something.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, _ := cp.Weft.Run(t, "", "proxy-status", "client.default")
		if strings.Contains(out, "NACK ") {
			t.Fatalf("grpc-go rejected the control plane's config:\n%s", out)
		}
		if code == 0 && strings.Count(strings.SplitN(out, "\n", 3)[1], "SYNCED") == 4 { // the table row: CDS LDS EDS RDS
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grpc-go never synced (exit %d):\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}

	// Default: no VirtualService, round robin over all three.
	counts := callVersions(t, client, 300, "")
	for _, v := range []string{"v1", "v2", "v3"} {
		if counts[v] < 60 {
			t.Fatalf("default routing %v: %s gets too little", counts, v)
		}
	}
	code, out, _ := cp.Weft.Run(t, "", "proxy-status")
	if code != 0 || !strings.Contains(out, "client.default") || !strings.Contains(out, "SYNCED") {
		t.Errorf("proxy-status (%d):\n%s", code, out)
	}

	// 80/20 v1/v2: behaviour changes within 2s of the edit, and the split
	// holds within ±5% over 1000 calls.
	kit.WriteConfig(t, dir, "reviews-vs.yaml", vs8020)
	took := waitBehaviour(t, client, "80/20 split", "", []string{subsetCluster("v1"), subsetCluster("v2")}, 2*time.Second, func(c map[string]int) bool { return c["v3"] == 0 })
	t.Logf("80/20 split took effect %v after the edit", took)
	if took > 2*time.Second {
		t.Errorf("edit took %v to change behaviour, want < 2s", took)
	}
	counts = callVersions(t, client, 1000, "")
	if f := float64(counts["v1"]) / 1000; f < 0.75 || f > 0.85 || counts["v3"] != 0 || counts["v1"]+counts["v2"] != 1000 {
		t.Errorf("80/20 split: %v (v1 %.1f%%)", counts, f*100)
	}

	// A header match sends marked calls to v3.
	kit.WriteConfig(t, dir, "reviews-vs.yaml", vsHeader)
	took = waitBehaviour(t, client, "header match to v3", "jason", []string{subsetCluster("v3")}, 2*time.Second, func(c map[string]int) bool { return c["v3"] == 30 })
	if took > 2*time.Second {
		t.Errorf("edit took %v to change behaviour, want < 2s", took)
	}
	if c := callVersions(t, client, 100, ""); c["v3"] != 0 {
		t.Errorf("unmarked calls reached v3: %v", c)
	}

	// An invalid edit is rejected: status names file:line, behaviour stays.
	kit.WriteConfig(t, dir, "reviews-vs.yaml", strings.Replace(vsHeader, "exact: jason", "exactly: jason", 1))
	deadline = time.Now().Add(5 * time.Second)
	for {
		code, out, _ = cp.Weft.Run(t, "", "get", "status")
		if code == 1 && strings.Contains(out, "reviews-vs.yaml:11") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejected edit not reported (exit %d):\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	if c := callVersions(t, client, 60, "jason"); c["v3"] != 60 {
		t.Errorf("after a rejected edit, marked calls changed: %v", c)
	}
	if c := callVersions(t, client, 200, ""); c["v3"] != 0 || c["v1"] == 0 || c["v2"] == 0 {
		t.Errorf("after a rejected edit, the split changed: %v", c)
	}
}
