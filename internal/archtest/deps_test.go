// Package archtest guards the architecture: the proxy stays free of
// control-plane, Kubernetes and Istio API imports, and translation stays
// free of network packages (docs/architecture.md, decision 10).
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		// A pattern that matches no packages yet is fine.
		if strings.Contains(string(out), "matched no packages") {
			return nil
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Fields(string(out))
}

func check(t *testing.T, from []string, forbidden []string) {
	t.Helper()
	for _, d := range deps(t, from...) {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("%v must not depend on %s (pulls in %s)", from, f, d)
			}
		}
	}
}

func TestProxyImports(t *testing.T) {
	check(t, []string{"github.com/weftmesh/weft/cmd/weft-proxy", "github.com/weftmesh/weft/internal/proxy/..."}, []string{
		"k8s.io/client-go",
		"k8s.io/api",
		"istio.io/api",
		"istio.io/client-go",
		"github.com/weftmesh/weft/internal/controlplane",
		"github.com/weftmesh/weft/internal/config",
		"github.com/weftmesh/weft/internal/cli",
	})
}

func TestControlPlaneImports(t *testing.T) {
	check(t, []string{"github.com/weftmesh/weft/internal/controlplane/..."}, []string{
		"github.com/weftmesh/weft/internal/proxy",
	})
}

// TestTranslateIsPure: translation does no I/O. Its own imports hold no
// network package (the Istio client-go types it reads pull net/http in
// transitively through apimachinery, which translate never calls), and
// nothing it depends on reaches the xDS server or the config store.
func TestTranslateIsPure(t *testing.T) {
	pkg := "github.com/weftmesh/weft/internal/controlplane/translate"
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// net/netip (values) and time (durations) are fine; sockets, HTTP,
	// gRPC, files and processes are not.
	io := map[string]bool{"net": true, "os": true, "os/exec": true, "io/ioutil": true, "syscall": true}
	for _, imp := range strings.Fields(string(out)) {
		if io[imp] || strings.HasPrefix(imp, "net/http") || strings.HasPrefix(imp, "google.golang.org/grpc") {
			t.Errorf("%s imports %s directly", pkg, imp)
		}
	}
	check(t, []string{pkg + "/..."}, []string{
		"github.com/weftmesh/weft/internal/controlplane/xds",
		"github.com/weftmesh/weft/internal/controlplane/store",
		"github.com/weftmesh/weft/internal/controlplane/server",
	})
}

// TestSharedImports: what both sides import (the node contract, identity,
// the access-log formats, the Prometheus writer) depends on neither side.
func TestSharedImports(t *testing.T) {
	check(t, []string{
		"github.com/weftmesh/weft/internal/node",
		"github.com/weftmesh/weft/internal/meshtls",
		"github.com/weftmesh/weft/internal/accesslog",
		"github.com/weftmesh/weft/internal/promtext",
	}, eitherSide)
}

// eitherSide is what a package shared by the control plane and the proxy
// (or by both sides' tests) must not depend on.
var eitherSide = []string{
	"github.com/weftmesh/weft/internal/controlplane",
	"github.com/weftmesh/weft/internal/proxy",
	"github.com/weftmesh/weft/internal/config",
	"k8s.io/client-go",
	"istio.io/api",
	"istio.io/client-go",
}

// TestProxyLayers: the proxy's config helpers sit below the packages that
// use them. xdsfield (the NACK rule for unimplemented fields) imports no
// other Weft package, and the tcp_proxy filter, which a listener runs,
// does not reach back into the listener package.
func TestProxyLayers(t *testing.T) {
	const leaf = "github.com/weftmesh/weft/internal/proxy/xdsfield"
	for _, d := range deps(t, leaf) {
		if d != leaf && strings.HasPrefix(d, "github.com/weftmesh/weft/") {
			t.Errorf("%s must import no other Weft package (imports %s)", leaf, d)
		}
	}
	check(t, []string{"github.com/weftmesh/weft/internal/proxy/tcp"}, []string{
		"github.com/weftmesh/weft/internal/proxy/listener",
	})
}

// TestKitLayers: the test kits stay where tests can use them. meshtest
// (the fake control plane, lean ADS client and backends that proxy tests
// use) depends on neither side of the mesh; test/e2e/kit, the process
// harness of the end-to-end suites, is imported by no production package.
func TestKitLayers(t *testing.T) {
	check(t, []string{"github.com/weftmesh/weft/internal/meshtest"}, eitherSide)
	check(t, []string{"github.com/weftmesh/weft/cmd/...", "github.com/weftmesh/weft/internal/..."}, []string{
		"github.com/weftmesh/weft/test",
	})
}
