package e2e

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestSidecarScopeFootprint translates a 1,000-service mesh (50 namespaces
// of 20 HTTP services, 2 endpoints each) for one sidecar, without and with
// a namespace-scoping Sidecar (egress ./* and istio-system/*), and runs a
// real weft-proxy on each output: it reports the bytes of xDS resources the
// proxy receives and its RSS once ready. The scoped proxy must receive a
// small fraction of the bytes.
func TestSidecarScopeFootprint(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	snap := footprintMesh(50, 20)
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "client", Namespace: "ns0", ServiceAccount: "default",
		Labels: map[string]string{"app": "client"}, AppAddress: "127.0.0.1"}
	full := translate.Build(snap, &model.Proxy{Meta: meta, ID: meta.ID()})
	scopedSnap := *snap
	scopedSnap.Sidecars = []*networkingv1.Sidecar{{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "ns0"},
		Spec:       networking.Sidecar{Egress: []*networking.IstioEgressListener{{Hosts: []string{"./*", "istio-system/*"}}}},
	}}
	scoped := translate.Build(&scopedSnap, &model.Proxy{Meta: meta, ID: meta.ID()})
	for _, o := range []*translate.Output{full, scoped} {
		if err := o.Check(); err != nil {
			t.Fatal(err)
		}
	}
	fullBytes, scopedBytes := outputBytes(full), outputBytes(scoped)
	if len(scoped.Clusters) >= len(full.Clusters)/10 || scopedBytes >= fullBytes/10 {
		t.Errorf("scoped proxy gets %d clusters / %d bytes, unscoped %d / %d: scoping did not cut it to a namespace",
			len(scoped.Clusters), scopedBytes, len(full.Clusters), fullBytes)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "weft-proxy")
	if out, err := kit.GoBuild(bin, "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fullRSS := runFootprintProxy(t, bin, full)
	scopedRSS := runFootprintProxy(t, bin, scoped)
	t.Logf("1,000 services: unscoped %d clusters, %d B xDS, RSS %.1f MiB; Sidecar ./* scoped %d clusters, %d B xDS, RSS %.1f MiB",
		len(full.Clusters), fullBytes, float64(fullRSS)/1024, len(scoped.Clusters), scopedBytes, float64(scopedRSS)/1024)
}

// footprintMesh is nsCount namespaces of perNS HTTP services on port 9080.
func footprintMesh(nsCount, perNS int) *model.Snapshot {
	snap := &model.Snapshot{Mesh: config.DefaultMeshConfig()}
	n := 0
	for ns := 0; ns < nsCount; ns++ {
		for i := 0; i < perNS; i++ {
			name, namespace := fmt.Sprintf("svc%d", i), fmt.Sprintf("ns%d", ns)
			svc := &model.Service{
				Hostname: name + "." + namespace + ".svc.cluster.local", Name: name, Namespace: namespace,
				Addresses: []string{fmt.Sprintf("198.19.%d.%d", n/250, 1+n%250)},
				Ports:     []*model.Port{{Name: "http", Number: 9080, Protocol: "HTTP"}},
				Source:    "Service " + namespace + "/" + name,
			}
			for e := 0; e < 2; e++ {
				svc.Endpoints = append(svc.Endpoints, &model.Endpoint{
					Address: fmt.Sprintf("198.18.%d.%d", (2*n+e)/250, 1+(2*n+e)%250), Port: 9080, ServicePort: 9080,
					Labels: map[string]string{"app": name}, WorkloadName: fmt.Sprintf("%s-%d", name, e), Namespace: namespace,
					ServiceAccount: "default", Healthy: true, TLSMode: "istio",
				})
			}
			snap.Services = append(snap.Services, svc)
			n++
		}
	}
	return snap
}

// outputBytes is the wire size of every resource in o.
func outputBytes(o *translate.Output) int {
	n := 0
	for _, m := range o.Listeners {
		n += proto.Size(m)
	}
	for _, m := range o.Routes {
		n += proto.Size(m)
	}
	for _, m := range o.Clusters {
		n += proto.Size(m)
	}
	for _, m := range o.Endpoints {
		n += proto.Size(m)
	}
	for _, m := range o.Secrets {
		n += proto.Size(m)
	}
	return n
}

// runFootprintProxy serves o to a weft-proxy and returns its RSS in KiB
// once it reports ready.
func runFootprintProxy(t *testing.T, bin string, o *translate.Output) int64 {
	t.Helper()
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	var res meshtest.Resources
	for _, m := range o.Listeners {
		res.Listeners = append(res.Listeners, types.Resource(m))
	}
	for _, m := range o.Routes {
		res.Routes = append(res.Routes, types.Resource(m))
	}
	for _, m := range o.Clusters {
		res.Clusters = append(res.Clusters, types.Resource(m))
	}
	for _, m := range o.Endpoints {
		res.Endpoints = append(res.Endpoints, types.Resource(m))
	}
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	p := startFootprintProxy(t, bin, srv.Addr(), "ns0")
	defer p.Cmd.Process.Kill()
	return proxyVMRSS(t, p.Cmd.Process.Pid)
}
