package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProxyBinaryStaysLean: weft-proxy, built as the Makefile builds it
// (-tags grpcnotrace), links none of the packages that cost every sidecar
// megabytes of RSS (docs/operations.md, "Proxy memory: where it goes"):
// text/template's reflection (reflect.Value.MethodByName with a name known
// only at run time) turns off the linker's dead-method elimination, which
// kept 10 MB of unused methods in the binary, and the admin and bootstrap
// APIs are not needed to print /config_dump.
func TestProxyBinaryStaysLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "grpcnotrace", "-deps", "-f", "{{.ImportPath}}",
		"github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"text/template",
		"html/template",
		"golang.org/x/net/trace",
		"net/http/pprof",
		"github.com/envoyproxy/go-control-plane/envoy/admin/v3",
		"github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3",
	}
	for _, d := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if d == f {
				t.Errorf("weft-proxy links %s", d)
			}
		}
	}
}
