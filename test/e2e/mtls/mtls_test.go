// Package mtls_test runs the control plane's translation and two real
// weft-proxy runtimes in one process, over real sockets and real TLS: a
// client sidecar (curl) and a server sidecar (httpbin) in explicit mode,
// each fed its own translation over ADS together with the SDS secrets
// "default" and "ROOTCA" that the proxy's identity module serves locally
// (here signed by a test CA). It checks auto mTLS, PeerAuthentication
// PERMISSIVE / STRICT / port-level DISABLE and the XFCC header the
// server-side sidecar sets.
package mtls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/runtime"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/proxy/telemetry"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// Addresses of this test's own loopback block (the chaos suite, which may
// run at the same time, has 127.0.40-42.x): sidecars on .45, apps on .46.
const (
	curlIP, httpbinIP       = "127.0.45.1", "127.0.45.2"
	curlAppIP, httpbinAppIP = "127.0.46.1", "127.0.46.2"
	proxyPort               = 15080
	servicePort             = 8000 // httpbin's service port
	httpbinPort             = 8080 // its workload (target) port, as in Istio's sample
	sniffedPort             = 7000 // a port without a protocol: HTTP is sniffed
)

const baseConfig = `
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec:
  ports: [{port: 8000, name: http, targetPort: 8080}, {port: 7000, name: web}]
  selector: {app: httpbin}
`

// testCA issues SPIFFE workload certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"cluster.local"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// secrets are what the identity module serves a workload: its chain and
// key as "default", the trust bundle as "ROOTCA". Istio's workload
// certificates have an empty subject and the SPIFFE id as URI SAN.
func (ca *testCA) secrets(t *testing.T, ns, sa string) []types.Resource {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://cluster.local/ns/" + ns + "/sa/" + sa)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	return []types.Resource{
		&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(chain), PrivateKey: inline(keyPEM)}}},
		&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(ca.pem)}}},
	}
}

type sidecar struct {
	meta    *node.Meta
	srv     *meshtest.XDSServer
	secrets []types.Resource
	tel     *telemetry.Telemetry
}

type mesh struct {
	t       *testing.T
	dir     string
	ca      *testCA
	curl    *sidecar
	httpbin *sidecar
	extra   []*sidecar // more proxies (a gateway)
}

func (m *mesh) all() []*sidecar { return append([]*sidecar{m.curl, m.httpbin}, m.extra...) }

func metaFor(name, ip, app string, ports []node.Port) *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: ip, Name: name, Namespace: "default", ServiceAccount: name,
		Labels: map[string]string{"app": name}, Ports: ports, AppAddress: app, ProxyPort: proxyPort, MeshTLS: true}
}

// push translates the config directory for both sidecars and publishes it.
func (m *mesh) push() {
	m.t.Helper()
	res, err := config.LoadPaths([]string{m.dir}, config.Options{})
	if err != nil {
		m.t.Fatal(err)
	}
	var ws []*registry.Workload
	for _, s := range m.all() {
		ws = append(ws, registry.FromMeta(s.meta))
	}
	snap, err := registry.Build(res, ws)
	if err != nil {
		m.t.Fatal(err)
	}
	for _, s := range m.all() {
		out := translate.Build(snap, &model.Proxy{Meta: s.meta, ID: s.meta.ID(), Services: registry.ServicesFor(snap, s.meta)})
		if err := out.Check(); err != nil {
			m.t.Fatalf("%s: %v", s.meta.Name, err)
		}
		r := meshtest.Resources{Secrets: s.secrets}
		for _, l := range out.Listeners {
			r.Listeners = append(r.Listeners, l)
		}
		for _, x := range out.Routes {
			r.Routes = append(r.Routes, x)
		}
		for _, c := range out.Clusters {
			r.Clusters = append(r.Clusters, c)
		}
		for _, e := range out.Endpoints {
			r.Endpoints = append(r.Endpoints, e)
		}
		if err := s.srv.Set(r); err != nil {
			m.t.Fatal(err)
		}
	}
}

// applyExample copies Istio's task YAML from examples/tasks/NAME into the
// config (replacing a file of the same name) and pushes.
func (m *mesh) applyExample(name string) {
	m.t.Helper()
	src := filepath.Join("..", "..", "..", "examples", "tasks", name)
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil || len(files) == 0 {
		m.t.Fatalf("no task YAML in %s: %v", src, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			m.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.dir, name+"-"+filepath.Base(f)), b, 0o644); err != nil {
			m.t.Fatal(err)
		}
	}
	m.push()
}

// removeExample takes a task's YAML out of the config and pushes.
func (m *mesh) removeExample(name string) {
	m.t.Helper()
	files, _ := filepath.Glob(filepath.Join(m.dir, name+"-*.yaml"))
	for _, f := range files {
		os.Remove(f)
	}
	m.push()
}

func startSidecar(t *testing.T, s *sidecar) {
	t.Helper()
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	s.srv = srv
	s.tel = telemetry.New(telemetry.Options{Node: s.meta})
	t.Cleanup(s.tel.Close)
	rt := runtime.New(runtime.Options{HCM: hcm.Options{Observe: s.tel.HTTP}, TCP: tcp.Options{Observe: s.tel.TCP}})
	xc := xdsclient.New(xdsclient.Options{Server: srv.Addr(), Node: s.meta.Node(), Handler: rt,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { xc.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ctx, c2 := context.WithTimeout(context.Background(), 2*time.Second)
		rt.Close(ctx)
		c2()
	})
}

func setup(t *testing.T) *mesh {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(baseConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	m := &mesh{t: t, dir: dir, ca: ca,
		curl:    &sidecar{meta: metaFor("curl", curlIP, curlAppIP, nil), secrets: ca.secrets(t, "default", "curl")},
		httpbin: &sidecar{meta: metaFor("httpbin", httpbinIP, httpbinAppIP, []node.Port{{Name: "http", Port: httpbinPort, Protocol: "HTTP"}, {Name: "web", Port: sniffedPort}}), secrets: ca.secrets(t, "default", "httpbin")},
	}
	meshtest.HTTPHeadersAt(t, fmt.Sprintf("%s:%d", httpbinAppIP, httpbinPort))
	meshtest.HTTPHeadersAt(t, fmt.Sprintf("%s:%d", httpbinAppIP, sniffedPort))
	startSidecar(t, m.curl)
	startSidecar(t, m.httpbin)
	m.push()
	return m
}

// meshGet is curl in the mesh: through its sidecar's HTTP proxy port.
func meshGet(path string) (int, map[string]string, error) {
	return meshGetPort(servicePort, path)
}

func meshGetPort(port int, path string) (int, map[string]string, error) {
	pu, _ := url.Parse(fmt.Sprintf("http://%s:%d", curlIP, proxyPort))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	return get(c, fmt.Sprintf("http://httpbin.default.svc.cluster.local:%d%s", port, path), nil)
}

// plainGet is a client outside the mesh: straight to httpbin's sidecar.
func plainGet(path string, hdr map[string]string) (int, map[string]string, error) {
	return plainGetPort(httpbinPort, path, hdr)
}

func plainGetPort(port int, path string, hdr map[string]string) (int, map[string]string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return get(c, fmt.Sprintf("http://%s:%d%s", httpbinIP, port, path), hdr)
}

func get(c *http.Client, u string, hdr map[string]string) (int, map[string]string, error) {
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Headers map[string]string `json:"headers"`
	}
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out.Headers, nil
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	meshtest.Eventually(t, what, 15*time.Second, cond)
}

func TestMutualTLSMigration(t *testing.T) {
	m := setup(t)
	const curlID, httpbinID = "spiffe://cluster.local/ns/default/sa/curl", "spiffe://cluster.local/ns/default/sa/httpbin"

	// PERMISSIVE (no policy): the mesh client speaks mTLS, the plaintext
	// client is served too.
	eventually(t, "mesh client over mTLS with XFCC", func() error {
		code, h, err := meshGet("/headers")
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		x := h["X-Forwarded-Client-Cert"]
		if !strings.HasPrefix(x, "By="+httpbinID+";Hash=") || !strings.HasSuffix(x, `;Subject="";URI=`+curlID) {
			return fmt.Errorf("X-Forwarded-Client-Cert %q", x)
		}
		return nil
	})
	// On a sniffed port the client offers istio-http/1.1, so the server
	// picks its HTTP chain over mTLS (XFCC proves the HCM terminated it).
	eventually(t, "mesh client over mTLS on a sniffed port", func() error {
		code, h, err := meshGetPort(sniffedPort, "/headers")
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		if x := h["X-Forwarded-Client-Cert"]; !strings.HasSuffix(x, "URI="+curlID) {
			return fmt.Errorf("X-Forwarded-Client-Cert %q", x)
		}
		return nil
	})
	if c, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s:%d/headers", httpbinIP, sniffedPort)); err != nil || c.StatusCode != 200 {
		t.Fatalf("PERMISSIVE plaintext client on a sniffed port: %v", err)
	} else {
		c.Body.Close()
	}
	// The server side's istio_requests_total names the caller by the
	// identity in its verified certificate.
	var prom strings.Builder
	m.httpbin.tel.WritePrometheus(&prom)
	if !strings.Contains(prom.String(), `reporter="destination",source_workload="curl",`) ||
		!strings.Contains(prom.String(), `source_principal="`+curlID+`"`) ||
		!strings.Contains(prom.String(), `destination_principal="`+httpbinID+`"`) ||
		!strings.Contains(prom.String(), `connection_security_policy="mutual_tls"`) {
		t.Errorf("no mutual_tls series with the caller's principal:\n%s", grepLines(prom.String(), "istio_requests_total"))
	}
	// The client side names the server by the certificate it verified.
	var cprom strings.Builder
	m.curl.tel.WritePrometheus(&cprom)
	found := false
	for _, l := range strings.Split(cprom.String(), "\n") {
		if strings.HasPrefix(l, "istio_requests_total{") && strings.Contains(l, `reporter="source"`) &&
			strings.Contains(l, `destination_principal="`+httpbinID+`"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no client-side series with destination_principal %s:\n%s", httpbinID, grepLines(cprom.String(), "istio_requests_total"))
	}
	code, h, err := plainGet("/headers", map[string]string{"X-Forwarded-Client-Cert": "By=x;URI=spiffe://cluster.local/ns/default/sa/admin"})
	if err != nil || code != 200 {
		t.Fatalf("PERMISSIVE plaintext client: %d %v", code, err)
	}
	if x, ok := h["X-Forwarded-Client-Cert"]; ok {
		t.Errorf("a plaintext client's forged XFCC reached the app: %q", x)
	}

	// Namespace STRICT: plaintext refused, the mesh client still served.
	m.applyExample("mtls-migration-namespace-strict")
	eventually(t, "plaintext refused under STRICT", func() error {
		code, _, err := plainGet("/headers", nil)
		if err == nil {
			return fmt.Errorf("plaintext client got %d", code)
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") &&
			!strings.Contains(err.Error(), "reset") {
			return fmt.Errorf("unexpected error %v", err)
		}
		return nil
	})
	for i := 0; i < 5; i++ {
		if code, _, err := meshGet("/headers"); err != nil || code != 200 {
			t.Fatalf("mesh client under STRICT: %d %v", code, err)
		}
	}

	// Port-level DISABLE on httpbin's port: plaintext again, and the mesh
	// client follows (the endpoint advertises tlsMode disabled).
	m.applyExample("authn-policy-port-disable")
	eventually(t, "plaintext served on the DISABLE port", func() error {
		code, _, err := plainGet("/headers", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		return nil
	})
	eventually(t, "mesh client over plaintext on the DISABLE port", func() error {
		code, h, err := meshGet("/headers")
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		if x, ok := h["X-Forwarded-Client-Cert"]; ok {
			return fmt.Errorf("XFCC %q on a plaintext hop", x)
		}
		return nil
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// plaintextRefused reports nil once a plaintext client outside the mesh
// is refused on port (the sidecar closes the connection).
func plaintextRefused(port int) func() error {
	return func() error {
		code, _, err := plainGetPort(port, "/headers", nil)
		if err == nil {
			return fmt.Errorf("plaintext client got %d", code)
		}
		return nil
	}
}

func plaintextServed(port int) func() error {
	return func() error {
		code, _, err := plainGetPort(port, "/headers", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		return nil
	}
}

func meshServedOverMTLS(port int) func() error {
	return func() error {
		code, h, err := meshGetPort(port, "/headers")
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		if !strings.Contains(h["X-Forwarded-Client-Cert"], "URI=spiffe://cluster.local/ns/default/sa/curl") {
			return fmt.Errorf("no mTLS hop: XFCC %q", h["X-Forwarded-Client-Cert"])
		}
		return nil
	}
}

// TestAuthenticationPolicy follows Istio's "Authentication Policy" task
// with its YAML (examples/tasks/authn-policy-*): mesh-wide STRICT, a
// namespace override, a workload override, port-level DISABLE and policy
// precedence.
func TestAuthenticationPolicy(t *testing.T) {
	m := setup(t)
	eventually(t, "PERMISSIVE by default: plaintext served", plaintextServed(httpbinPort))
	eventually(t, "PERMISSIVE by default: mesh over mTLS", meshServedOverMTLS(servicePort))

	m.applyExample("authn-policy-mesh-strict")
	eventually(t, "mesh-wide STRICT: plaintext refused", plaintextRefused(httpbinPort))
	eventually(t, "mesh-wide STRICT: sniffed port refuses plaintext too", plaintextRefused(sniffedPort))
	eventually(t, "mesh-wide STRICT: mesh client served", meshServedOverMTLS(servicePort))

	m.applyExample("authn-policy-namespace-permissive")
	eventually(t, "namespace PERMISSIVE overrides the mesh", plaintextServed(httpbinPort))

	m.applyExample("authn-policy-workload-strict")
	eventually(t, "workload STRICT overrides the namespace", plaintextRefused(httpbinPort))
	eventually(t, "workload STRICT: mesh client served", meshServedOverMTLS(servicePort))

	m.removeExample("authn-policy-workload-strict")
	m.applyExample("authn-policy-port-disable")
	eventually(t, "port-level DISABLE: plaintext served on 8080", plaintextServed(httpbinPort))
	eventually(t, "port-level DISABLE: other ports stay STRICT", plaintextRefused(sniffedPort))
	eventually(t, "port-level DISABLE: STRICT port still serves the mesh", meshServedOverMTLS(sniffedPort))

	m.removeExample("authn-policy-port-disable")
	m.removeExample("authn-policy-namespace-permissive")
	m.applyExample("authn-policy-overwrite")
	eventually(t, "workload DISABLE wins over namespace STRICT", plaintextServed(httpbinPort))
	eventually(t, "workload DISABLE: the mesh client sends plaintext", func() error {
		code, h, err := meshGet("/headers")
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		if x, ok := h["X-Forwarded-Client-Cert"]; ok {
			return fmt.Errorf("XFCC %q on a plaintext hop", x)
		}
		return nil
	})
}

// egressConfig is Istio's egress gateway pattern with mutual TLS between
// the sidecar and the gateway: the mesh route sends external.example to
// the egress gateway (ISTIO_MUTUAL, SNI external.example), whose
// ISTIO_MUTUAL server terminates it and forwards to the site.
const egressConfig = `
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [external.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.46.9, ports: {http: 8081}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [external.example]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: ISTIO_MUTUAL, sni: external.example}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway, namespace: default}
spec:
  hosts: [external.example]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 443}}}]
  - match: [{gateways: [istio-egressgateway], port: 443}]
    route: [{destination: {host: external.example, port: {number: 80}}}]
`

// TestEgressGatewayIstioMutual: an ISTIO_MUTUAL gateway server works with
// the gateway's own certificate (SDS default/ROOTCA), the sidecar reaches
// it over mutual TLS, and a plaintext client is refused at the gateway.
func TestEgressGatewayIstioMutual(t *testing.T) {
	const gwIP, siteAddr = "127.0.45.3", "127.0.46.9:8081"
	meshtest.HTTPHeadersAt(t, siteAddr)
	m := setup(t)
	ca := m.ca
	gw := &sidecar{meta: &node.Meta{Type: node.Router, IP: gwIP, Name: "istio-egressgateway", Namespace: "istio-system",
		ServiceAccount: "istio-egressgateway-service-account", Labels: map[string]string{"istio": "egressgateway"}, MeshTLS: true},
		secrets: ca.secrets(t, "istio-system", "istio-egressgateway-service-account")}
	startSidecar(t, gw)
	m.extra = append(m.extra, gw)
	if err := os.WriteFile(filepath.Join(m.dir, "egress.yaml"), []byte(egressConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	m.push()
	pu, _ := url.Parse(fmt.Sprintf("http://%s:%d", curlIP, proxyPort))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	eventually(t, "curl → egress gateway (ISTIO_MUTUAL) → external.example", func() error {
		code, h, err := get(c, "http://external.example/headers", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("code %d err %v", code, err)
		}
		if h["Host"] != "" && h["Host"] != "external.example" {
			return fmt.Errorf("host %q", h["Host"])
		}
		return nil
	})
	// The request went through the gateway (its own metrics saw it).
	var prom strings.Builder
	gw.tel.WritePrometheus(&prom)
	if !strings.Contains(prom.String(), `destination_service="external.example"`) {
		t.Errorf("the egress gateway saw no request for external.example:\n%s", grepLines(prom.String(), "istio_requests_total"))
	}
	// The gateway's server demands a mesh client certificate.
	if code, _, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+gwIP+":8443/headers", nil); err == nil {
		t.Errorf("plaintext client to the ISTIO_MUTUAL gateway server got %d", code)
	}
}
