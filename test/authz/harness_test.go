// Package authz tests authorization end to end without processes: Istio
// policies go through the control plane's translation, the resulting
// listener's connection manager is compiled by weft-proxy's hcm package and
// real HTTP/1.1 requests are served on an in-memory connection whose
// downstream facts (peer address, verified peer certificate) the test sets.
package authz

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/route"
)

const workloadIP = "198.18.0.10"

// policy parses an AuthorizationPolicy spec (YAML) into namespace default.
func policy(t testing.TB, name, spec string, annotations ...string) *securityv1.AuthorizationPolicy {
	t.Helper()
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	var v any
	if err := yaml.Unmarshal([]byte(spec), &v); err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(j, &ap.Spec); err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	if len(annotations) == 2 {
		ap.Annotations = map[string]string{annotations[0]: annotations[1]}
	}
	return ap
}

// env serves the translated route tables; clusters are absent, so an
// allowed request ends in 503 (no cluster) and a denied one in 403.
type env struct {
	tables map[string]*route.Table
	set    *cluster.Set // outbound clusters (ext_authz services); nil: none
}

func (e *env) RouteTable(n string) *route.Table { return e.tables[n] }

// Cluster serves outbound clusters only: the app behind the inbound
// cluster is not running, so allowed requests end in 503.
func (e *env) Cluster(n string) *cluster.Cluster {
	if e.set == nil || strings.HasPrefix(n, "inbound|") {
		return nil
	}
	return e.set.Get(n)
}

// sidecar translates pols (and mesh) for a capture-mode sidecar serving
// HTTP on 8080 and compiles its inbound connection manager.
func sidecar(t testing.TB, mesh *meshv1alpha1.MeshConfig, pols ...*securityv1.AuthorizationPolicy) *hcm.Manager {
	t.Helper()
	m, _ := build(t, mesh, nil, pols...)
	return m
}

func build(t testing.TB, mesh *meshv1alpha1.MeshConfig, snapEdit func(*model.Snapshot), pols ...*securityv1.AuthorizationPolicy) (*hcm.Manager, *hcmv3.HttpConnectionManager) {
	t.Helper()
	if mesh == nil {
		mesh = &meshv1alpha1.MeshConfig{RootNamespace: "istio-system"}
	}
	snap := &model.Snapshot{Mesh: mesh, AuthorizationPolicies: pols}
	if snapEdit != nil {
		snapEdit(snap)
	}
	p := &model.Proxy{ID: "httpbin", Meta: &node.Meta{Type: node.Sidecar, IP: workloadIP, Name: "httpbin-v1", Namespace: "default",
		ServiceAccount: "httpbin", Labels: map[string]string{"app": "httpbin"}, Capture: true,
		Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}}}
	out := translate.Build(snap, p)
	e := &env{tables: map[string]*route.Table{}}
	if len(snap.Services) > 0 {
		as := map[string]*endpointv3.ClusterLoadAssignment{}
		for _, a := range out.Endpoints {
			as[a.GetClusterName()] = a
		}
		set, err := cluster.Build(nil, out.Clusters, as, nil, cluster.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(set.Close)
		e.set = set
	}
	for _, rc := range out.Routes {
		tb, err := route.Compile(rc)
		if err != nil {
			t.Fatal(err)
		}
		e.tables[rc.Name] = tb
	}
	for _, l := range out.Listeners {
		for _, fc := range l.GetFilterChains() {
			if fc.GetName() != "inbound_0.0.0.0_8080" {
				continue
			}
			cfg := &hcmv3.HttpConnectionManager{}
			if err := fc.GetFilters()[len(fc.GetFilters())-1].GetTypedConfig().UnmarshalTo(cfg); err != nil {
				t.Fatal(err)
			}
			m, err := hcm.New(cfg, e, hcm.Options{})
			if err != nil {
				t.Fatalf("proxy rejects the translated config: %v", err)
			}
			return m, cfg
		}
	}
	t.Fatalf("no inbound chain for 8080 in %v", names(out.Listeners))
	return nil, nil
}

func names(ls []*listenerv3.Listener) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.GetName())
	}
	return out
}

// call is one request and the connection it arrives on.
type call struct {
	method, target, host string
	header               []string // "Name: value"
	peer                 string   // ip:port (default 10.1.0.5:40000)
	dst                  string   // ip:port (default the workload's 8080)
	sni                  string
	spiffe               string // the verified peer certificate's URI SAN
}

// do serves c through m and returns the status and body.
func do(t testing.TB, m *hcm.Manager, c call) (int, string) {
	t.Helper()
	if c.method == "" {
		c.method = "GET"
	}
	if c.host == "" {
		c.host = "httpbin.default.svc.cluster.local"
	}
	if c.peer == "" {
		c.peer = "10.1.0.5:40000"
	}
	if c.dst == "" {
		c.dst = workloadIP + ":8080"
	}
	info := &downstream.Info{Listener: "virtualInbound", Remote: netip.MustParseAddrPort(c.peer),
		Local: netip.MustParseAddrPort(c.dst), OriginalDst: netip.MustParseAddrPort(c.dst),
		ServerName: c.sni, Protocol: downstream.HTTP1}
	if c.spiffe != "" {
		u, err := url.Parse(c.spiffe)
		if err != nil {
			t.Fatal(err)
		}
		cert := &x509.Certificate{URIs: []*url.URL{u}}
		info.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert},
			VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.ServeConn(server, info)
	}()
	defer func() { client.Close(); <-done }()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", c.method, c.target, c.host)
	for _, h := range c.header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	go client.Write([]byte(b.String()))
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.target, err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, body.String()
}

// allowed reports whether the request passed authorization (403 is a
// denial; the 503 of the missing upstream means it got through).
func allowed(t testing.TB, m *hcm.Manager, c call) bool {
	t.Helper()
	code, body := do(t, m, c)
	switch code {
	case http.StatusForbidden:
		if body != "RBAC: access denied" {
			t.Errorf("403 body %q, want RBAC: access denied", body)
		}
		return false
	case http.StatusServiceUnavailable:
		return true
	}
	t.Fatalf("%s %s: unexpected status %d %q", c.method, c.target, code, body)
	return false
}

type securityv1AP = securityv1.AuthorizationPolicy

func splitN(s, sep string, n int) []string { return strings.SplitN(s, sep, n) }
