package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// dialAs connects m over mutual TLS on the secure port with a certificate
// for m's namespace and service account sa (which m then claims).
func dialAs(t *testing.T, s *server.Server, m *node.Meta, sa string) (*meshtest.XDSClient, error) {
	t.Helper()
	m.ServiceAccount = sa
	tok, err := s.Tokens().Create(m.Namespace, sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := getCert(t, s, tok)
	if err != nil {
		t.Fatal(err)
	}
	return meshtest.DialXDS(s.SecureAddr(), m, meshtest.XDSClientOptions{Types: withSecrets, DialOptions: []grpc.DialOption{tlsTo(s, cert)}})
}

var withSecrets = append(append([]string(nil), meshtest.DefaultXDSTypes...), resource.SecretType)

// TestGatewayCredentialIsolation: a gateway in namespace team, connected
// with team's certificate, gets team's copy of a credential and never
// istio-system's, whatever its metadata claims; a proxy on the plaintext
// port (no verified identity) gets no credential at all.
func TestGatewayCredentialIsolation(t *testing.T) {
	sysCert, sysKey := testKey(t)
	teamCert, teamKey := testKey(t)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	secret := func(ns, name string, c, k []byte) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n", name, ns, b64(c), b64(k))
	}
	files := map[string]string{
		"bookinfo.yaml": bookinfo,
		"gateway.yaml": `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: cred}
    hosts: [a.example.com]
  - port: {number: 443, name: https-sys, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: sys-only}
    hosts: [b.example.com]
`,
		"sys.yaml":     secret("istio-system", "cred", sysCert, sysKey),
		"sysonly.yaml": secret("istio-system", "sys-only", sysCert, sysKey),
		"team.yaml":    secret("team", "cred", teamCert, teamKey),
	}
	s, _ := startWith(t, files, server.Options{TokenDir: "-", SecureAddress: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	secrets := func(c *meshtest.XDSClient) map[string]*tlsv3.Secret {
		out := map[string]*tlsv3.Secret{}
		for name, r := range c.Resources(resource.SecretType) {
			out[name] = r.(*tlsv3.Secret)
		}
		return out
	}
	team := &node.Meta{Type: node.Router, IP: "127.0.0.2", Name: "team-gw", Namespace: "team", Labels: map[string]string{"istio": "ingressgateway"}}

	// Team's gateway claiming istio-system in its metadata, with team's
	// certificate: refused outright.
	liar := *team
	liar.Namespace, liar.ServiceAccount = "istio-system", "gw"
	tok, _ := s.Tokens().Create("team", "gw", time.Hour)
	cert, err := getCert(t, s, tok)
	if err != nil {
		t.Fatal(err)
	}
	c, err := meshtest.DialXDS(s.SecureAddr(), &liar, meshtest.XDSClientOptions{Types: withSecrets, DialOptions: []grpc.DialOption{tlsTo(s, cert)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitErr(ctx, t, c, "metadata claiming istio-system"); err == nil {
		t.Fatal("a team gateway claiming istio-system was served")
	}
	if got := secrets(c); len(got) != 0 {
		t.Errorf("the lying gateway got secrets %v", got)
	}
	c.Close()

	// Honest team gateway: team's copy only.
	c, err = dialAs(t, s, team, "gw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitFor(ctx, func(c *meshtest.XDSClient) bool { return secrets(c)["kubernetes://cred"] != nil }); err != nil {
		t.Fatalf("team gateway never got kubernetes://cred: %v", err)
	}
	got := secrets(c)
	if !bytes.Equal(got["kubernetes://cred"].GetTlsCertificate().GetCertificateChain().GetInlineBytes(), teamCert) {
		t.Error("team gateway got another namespace's copy of cred")
	}
	if got["kubernetes://sys-only"] != nil {
		t.Error("team gateway got istio-system's sys-only")
	}

	// The plaintext port: metadata is a claim, so no credentials.
	anon := &node.Meta{Type: node.Router, IP: "127.0.0.3", Name: "anon-gw", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}}
	a, err := meshtest.DialXDS(s.XDSAddr(), anon, meshtest.XDSClientOptions{Types: withSecrets})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.WaitFor(ctx, func(c *meshtest.XDSClient) bool { return len(c.Resources(resource.ClusterType)) > 0 }); err != nil {
		t.Fatalf("plaintext gateway got no clusters: %v", err)
	}
	// What the control plane serves it (all types of one push).
	code, body := do(t, s, call{"GET", server.PathProxies + "/" + anon.ID() + "/config_dump", "", nil})
	if code != 200 || strings.Contains(body, "kubernetes://") || strings.Contains(body, "https.443") {
		t.Errorf("a gateway without a verified identity is served credentials or their chains (%d):\n%.2000s", code, body)
	}
	if got := secrets(a); len(got) != 0 {
		t.Errorf("a gateway without a verified identity got secrets %v", got)
	}
}
