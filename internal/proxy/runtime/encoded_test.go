package runtime_test

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/runtime"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// Routes arrive as bytes: the same route configuration keeps its compiled
// table even in other bytes (fields in another order); a changed one is
// compiled anew; one that does not decode is rejected.
func TestRouteTableKeptForTheSameEncodedConfig(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	defer rt.Close(t.Context())
	rc := meshtest.RouteConfig("80", "backend")
	res := xdsclient.NewResources()
	res.Routes["80"] = encode(t, rc)
	if err := rt.Apply(xdsclient.RouteType, res); err != nil {
		t.Fatal(err)
	}
	first := rt.RouteTable("80")
	if first == nil {
		t.Fatal("no table for route 80")
	}

	// The same message, its name written after the virtual hosts.
	reordered := append(encode(t, &routev3.RouteConfiguration{VirtualHosts: rc.GetVirtualHosts()}),
		encode(t, &routev3.RouteConfiguration{Name: "80"})...)
	if string(reordered) == string(res.Routes["80"]) {
		t.Fatal("test setup: the reordered encoding is the same bytes")
	}
	same := xdsclient.NewResources()
	same.Routes["80"] = reordered
	if err := rt.Apply(xdsclient.RouteType, same); err != nil {
		t.Fatal(err)
	}
	if rt.RouteTable("80") != first {
		t.Fatal("the same route configuration in other bytes was compiled again")
	}

	changed := xdsclient.NewResources()
	changed.Routes["80"] = encode(t, meshtest.RouteConfig("80", "other"))
	if err := rt.Apply(xdsclient.RouteType, changed); err != nil {
		t.Fatal(err)
	}
	if rt.RouteTable("80") == first {
		t.Fatal("a changed route configuration kept the old table")
	}

	bad := xdsclient.NewResources()
	bad.Routes["80"] = []byte{0xff}
	if err := rt.Apply(xdsclient.RouteType, bad); err == nil {
		t.Fatal("a route configuration that does not decode was accepted")
	}
}
