package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestControlPlaneTypesResolve: every typed config (google.protobuf.Any) the
// control plane emits in its golden translations resolves in weft-proxy's
// own type registry (this package's imports are the binary's). An
// unregistered type decodes as an error and makes /config_dump answer 500,
// as the raw_buffer transport socket of auto mTLS once did.
func TestControlPlaneTypesResolve(t *testing.T) {
	files, err := filepath.Glob("../../internal/controlplane/translate/testdata/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no control-plane golden files (%v)", err)
	}
	kinds := map[string]func() proto.Message{
		"clusters":  func() proto.Message { return &clusterv3.Cluster{} },
		"listeners": func() proto.Message { return &listenerv3.Listener{} },
		"routes":    func() proto.Message { return &routev3.RouteConfiguration{} },
		"endpoints": func() proto.Message { return &endpointv3.ClusterLoadAssignment{} },
		"secrets":   func() proto.Message { return &tlsv3.Secret{} },
	}
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string][]json.RawMessage
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for kind, items := range doc {
			mk, ok := kinds[kind]
			if !ok {
				t.Fatalf("%s: unknown section %q", f, kind)
			}
			for _, item := range items {
				m := mk()
				if err := protojson.Unmarshal(item, m); err != nil {
					t.Errorf("%s: %s: %v", f, kind, err)
					continue
				}
				if _, err := protojson.Marshal(m); err != nil {
					t.Errorf("%s: %s: re-encoding for config_dump: %v", f, kind, err)
				}
				n++
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d resources checked", n)
	}
}
