package hcm

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/proxy/route"
)

const hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// TestControlPlaneGoldens feeds every route configuration and HTTP
// connection manager in the control plane's golden translations to the
// proxy: what Weft's control plane emits, weft-proxy must accept (no NACK).
func TestControlPlaneGoldens(t *testing.T) {
	// The goldens are part of this repository: their absence is a broken
	// tree (moved or renamed), never a reason to skip the contract.
	const goldens = "../../controlplane/translate/testdata/*/*.json"
	files, err := filepath.Glob(goldens)
	if err != nil || len(files) == 0 {
		t.Fatalf("no control-plane golden files match %s (%v): the contract cannot be checked", goldens, err)
	}
	routes, hcms := 0, 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Routes    []json.RawMessage `json:"routes"`
			Listeners []any             `json:"listeners"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range doc.Routes {
			rc := &routev3.RouteConfiguration{}
			if err := protojson.Unmarshal(r, rc); err != nil {
				t.Errorf("%s: decoding a route configuration: %v", f, err)
				continue
			}
			routes++
			if _, err := route.Compile(rc); err != nil {
				t.Errorf("%s: route.Compile NACKs: %v", f, err)
			}
		}
		walk(doc.Listeners, func(m map[string]any) {
			if m["@type"] != hcmType {
				return
			}
			cp := map[string]any{}
			for k, v := range m {
				if k != "@type" {
					cp[k] = v
				}
			}
			b, _ := json.Marshal(cp)
			cfg := &hcmv3.HttpConnectionManager{}
			if err := protojson.Unmarshal(b, cfg); err != nil {
				t.Errorf("%s: decoding an HCM: %v", f, err)
				return
			}
			hcms++
			// access_log and tracing belong to telemetry's Observer; accept
			// them here to check the rest of the config.
			opts := Options{Observe: func(*hcmv3.HttpConnectionManager) (Observer, error) { return nopObserver{}, nil }}
			if _, err := New(cfg, &testEnv{}, opts); err != nil {
				t.Errorf("%s: hcm.New NACKs: %v", f, err)
			}
		})
	}
	if routes == 0 || hcms == 0 {
		t.Fatalf("the goldens held %d route configurations and %d connection managers: nothing was checked", routes, hcms)
	}
	t.Logf("%d route configurations, %d connection managers accepted", routes, hcms)
}

func walk(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

type nopObserver struct{}

func (nopObserver) Request(*http.Request, *StreamInfo) {}
func (nopObserver) Response(http.Header, *StreamInfo)  {}
func (nopObserver) Complete(*StreamInfo)               {}
