package runtime_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/runtime"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// TestListenerWarmsUntilSecretArrives: a TLS listener whose SDS secret has
// not arrived is neither bound nor NACKed; the proxy subscribes to the
// secret and binds the listener once it comes.
func TestListenerWarmsUntilSecretArrives(t *testing.T) {
	be := backend(t, "tls-backend")
	certPEM, keyPEM, pool := selfSigned(t, "gw.example.com")
	l := meshtest.Listener("https", "127.0.0.1:0", meshtest.TCPProxyFilter("be"))
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: meshtest.Any(&tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "gw-cert"}}}})}}
	plain := meshtest.Listener("plain", "127.0.0.1:0", meshtest.TCPProxyFilter("be"))
	res := meshtest.Resources{
		Listeners: []types.Resource{l, plain},
		Clusters:  []types.Resource{meshtest.StaticCluster("be", be)},
	}
	srv, err := meshtest.NewXDSServer(meshtest.XDSServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	rt := runtime.New(runtime.Options{})
	xc := xdsclient.New(xdsclient.Options{Server: srv.Addr(), Node: &corev3.Node{Id: "router~127.0.0.1~gw.default~default.svc.cluster.local"},
		Handler: rt, BackoffMin: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { xc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; rt.Close(context.Background()) }()

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if _, _, err := srv.WaitRequest(wctx, 0, func(r meshtest.XDSRequest) bool {
		return r.TypeURL == xdsclient.SecretType && len(r.Names) == 1 && r.Names[0] == "gw-cert"
	}); err != nil {
		t.Fatal("no SDS subscription for the listener's secret:", err)
	}
	meshtest.WaitFor(t, "plain listener", func() bool { _, ok := rt.Listeners().Addr("plain"); return ok })
	if _, ok := rt.Listeners().Addr("https"); ok {
		t.Fatal("listener bound before its certificate arrived")
	}
	if w := rt.Warming()["https"]; len(w) != 1 || w[0] != "secret gw-cert" {
		t.Fatalf("warming %v", rt.Warming())
	}
	for _, r := range srv.Requests() {
		if r.NACK() {
			t.Fatalf("warming listener NACKed: %s", r.ErrorDetail)
		}
	}
	select {
	case <-xc.Ready():
		t.Fatal("ready while a listener is warming")
	default:
	}
	res.Secrets = []types.Resource{&tlsv3.Secret{Name: "gw-cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}}
	if err := srv.Set(res); err != nil {
		t.Fatal(err)
	}
	select {
	case <-xc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after the secret arrived")
	}
	meshtest.WaitFor(t, "https listener", func() bool { _, ok := rt.Listeners().Addr("https"); return ok })
	addr, _ := rt.Listeners().Addr("https")
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{ServerName: "gw.example.com", RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || strings.TrimSpace(string(buf[:n])) != "tls-backend" {
		t.Fatalf("through TLS: %q %v", buf[:n], err)
	}
}

func selfSigned(t *testing.T, dns string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dns}, DNSNames: []string{dns},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// TestListenerUpdateWarmsUntilRouteArrives: a listener update that points
// at an RDS name not yet received keeps the previous version serving.
func TestListenerUpdateWarmsUntilRouteArrives(t *testing.T) {
	be1, be2 := httpBackend(t, "one"), httpBackend(t, "two")
	clusters := []types.Resource{meshtest.StaticCluster("c1", be1), meshtest.StaticCluster("c2", be2)}
	v1 := meshtest.Resources{
		Listeners: []types.Resource{meshtest.Listener("http", "127.0.0.1:0", meshtest.HCMFilter("80"))},
		Routes:    []types.Resource{meshtest.RouteConfig("80", "c1")},
		Clusters:  clusters,
	}
	p := startProxy(t, v1)
	url := "http://" + p.addr(t, "http") + "/"
	if got := httpGet(t, url); got != "one" {
		t.Fatalf("got %q", got)
	}
	v2 := v1
	v2.Listeners = []types.Resource{meshtest.Listener("http", "127.0.0.1:0", meshtest.HCMFilter("81"))}
	if err := p.srv.Set(v2); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "listener warming", func() bool { return len(p.rt.Warming()["http"]) == 1 })
	if got := httpGet(t, url); got != "one" {
		t.Fatalf("warming listener: got %q, want the previous version's answer", got)
	}
	v3 := v2
	v3.Routes = []types.Resource{meshtest.RouteConfig("80", "c1"), meshtest.RouteConfig("81", "c2")}
	if err := p.srv.Set(v3); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "warm listener active", func() bool { return httpGet(t, url) == "two" })
	if len(p.rt.Warming()) != 0 {
		t.Fatalf("still warming: %v", p.rt.Warming())
	}
}

func httpBackend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestUnsupportedSecretIsNACKed(t *testing.T) {
	a := backend(t, "a")
	p := startProxy(t, tcpConfig("a", map[string][]string{"a": {a}}))
	n := len(p.srv.Requests())
	res := tcpConfig("a", map[string][]string{"a": {a}})
	// A listener references the secret so the proxy subscribes to it.
	l := meshtest.Listener("tls", "127.0.0.1:0", meshtest.TCPProxyFilter("a"))
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: meshtest.Any(&tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "keys"}}}})}}
	res.Listeners = append(res.Listeners, l)
	res.Secrets = []types.Resource{&tlsv3.Secret{Name: "keys", Type: &tlsv3.Secret_SessionTicketKeys{SessionTicketKeys: &tlsv3.TlsSessionTicketKeys{}}}}
	if err := p.srv.Set(res); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nack, _, err := p.srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool { return r.NACK() })
	if err != nil {
		t.Fatal(err)
	}
	if nack.TypeURL != xdsclient.SecretType || !strings.Contains(nack.ErrorDetail, `secret "keys"`) || !strings.Contains(nack.ErrorDetail, "session_ticket_keys") {
		t.Fatalf("NACK %+v", nack)
	}
}

func TestBindFailureIsNACKed(t *testing.T) {
	a := backend(t, "a")
	p := startProxy(t, tcpConfig("a", map[string][]string{"a": {a}}))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	n := len(p.srv.Requests())
	res := tcpConfig("a", map[string][]string{"a": {a}}, meshtest.Listener("taken", busy.Addr().String(), meshtest.TCPProxyFilter("a")))
	if err := p.srv.Set(res); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nack, _, err := p.srv.WaitRequest(ctx, n, func(r meshtest.XDSRequest) bool { return r.NACK() })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nack.ErrorDetail, `listener "taken"`) || !strings.Contains(nack.ErrorDetail, "address already in use") {
		t.Fatalf("NACK %q", nack.ErrorDetail)
	}
	c, got := hello(t, p.addr(t, "tcp"))
	c.Close()
	if got != "a" {
		t.Fatalf("old config not serving: %q", got)
	}
}
