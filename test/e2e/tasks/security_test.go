package tasks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/bookinfo"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// requireMeshTLS skips unless the demo's proxies hold workload
// certificates (they take part in mutual TLS only then), as the control
// plane reports them.
func requireMeshTLS(t *testing.T, workload string) {
	t.Helper()
	out, err := weft.Output(t, "", "x", "describe", "workload", workload, "-o", "json")
	if err != nil {
		t.Fatalf("weft x describe workload %s: %v\n%s", workload, err, out)
	}
	var d struct {
		MeshTLS bool `json:"meshTLS"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("describe output: %v\n%s", err, out)
	}
	if !d.MeshTLS {
		t.Skipf("%s's proxy holds no workload certificate: the demo runs without identities", workload)
	}
}

// plainToHTTPBin is a client outside the mesh: straight to httpbin-v1's
// sidecar (its inbound port), no proxy of its own.
func plainToHTTPBin(t *testing.T, m *demo.Mesh, path string) kit.Response {
	return kit.Get(t, direct, "http://"+m.Workload("httpbin-v1").IP+":8080"+path, nil)
}

// direct is a fresh connection per request: a refused client must not
// reuse a pooled one.
var direct = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func curlID(m *demo.Mesh) string {
	w := m.Workload("curl")
	return "spiffe://cluster.local/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

func meshHeaders(t *testing.T, m *demo.Mesh) func() error {
	return func() error {
		r := fromWorkload(t, m, "curl", "http://httpbin:8000/headers", nil)
		if r.Status != 200 {
			return fmt.Errorf("curl → httpbin: %d %s", r.Status, r.Body)
		}
		if !strings.Contains(r.Body, "X-Forwarded-Client-Cert") || !strings.Contains(r.Body, "URI="+curlID(m)) {
			return fmt.Errorf("no X-Forwarded-Client-Cert naming %s in %s", curlID(m), r.Body)
		}
		return nil
	}
}

func plainServed(t *testing.T, m *demo.Mesh) func() error {
	return func() error {
		if r := plainToHTTPBin(t, m, "/headers"); r.Status != 200 {
			return fmt.Errorf("plaintext client: %d %s", r.Status, r.Body)
		}
		return nil
	}
}

func plainRefused(t *testing.T, m *demo.Mesh) func() error {
	return func() error {
		if r := plainToHTTPBin(t, m, "/headers"); r.Status != -1 {
			return fmt.Errorf("plaintext client got %d", r.Status)
		}
		return nil
	}
}

// TestMutualTLSMigration is Istio's "Mutual TLS Migration" task on the
// demo: PERMISSIVE serves mesh and plaintext clients, the namespace STRICT
// policy (the task's YAML) refuses plaintext while mesh clients still get
// 200; httpbin's /headers shows the caller's SPIFFE id in XFCC, and the
// server side's istio_requests_total names it as source_principal.
func TestMutualTLSMigration(t *testing.T) {
	m := mesh(t)
	requireMeshTLS(t, "httpbin-v1")
	bookinfo.MTLSMigration(t, demoTarget{m})
}

// TestAuthenticationPolicy is Istio's "Authentication Policy" task on the
// demo with its YAML: mesh-wide STRICT (the ingress gateway still reaches
// the sidecars: it originates mutual TLS), a namespace override, a
// workload override and port-level DISABLE.
func TestAuthenticationPolicy(t *testing.T) {
	m := mesh(t)
	requireMeshTLS(t, "httpbin-v1")
	weft.Apply(t, kit.Task("authn-policy-mesh-strict/peer-authentication.yaml"))
	meshtest.Eventually(t, "mesh-wide STRICT: plaintext refused", 30*time.Second, plainRefused(t, m))
	meshtest.Eventually(t, "mesh-wide STRICT: mesh client served", 30*time.Second, meshHeaders(t, m))
	meshtest.Eventually(t, "mesh-wide STRICT: ingress → productpage over mTLS", 30*time.Second, func() error {
		if r := productpage(t, ""); r.Status != 200 {
			return fmt.Errorf("productpage through the ingress: %d", r.Status)
		}
		return nil
	})

	weft.Apply(t, kit.Task("authn-policy-namespace-permissive/peer-authentication.yaml"))
	meshtest.Eventually(t, "namespace PERMISSIVE overrides the mesh", 30*time.Second, plainServed(t, m))

	weft.Apply(t, kit.Task("authn-policy-workload-strict/peer-authentication.yaml"))
	meshtest.Eventually(t, "workload STRICT overrides the namespace", 30*time.Second, plainRefused(t, m))
	meshtest.Eventually(t, "workload STRICT: mesh client served", 30*time.Second, meshHeaders(t, m))

	weft.Apply(t, kit.Task("authn-policy-port-disable/peer-authentication.yaml"))
	meshtest.Eventually(t, "port-level DISABLE on 8080: plaintext served", 30*time.Second, plainServed(t, m))
	meshtest.Eventually(t, "port-level DISABLE: mesh client served over plaintext", 30*time.Second, func() error {
		r := fromWorkload(t, m, "curl", "http://httpbin:8000/headers", nil)
		if r.Status != 200 || strings.Contains(r.Body, "X-Forwarded-Client-Cert") {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
}
