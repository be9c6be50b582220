// Package identity_test runs the control plane (CA and xDS over mTLS on
// its secure port) and two weft-proxy sidecars in one process, over real
// sockets: each proxy gets its certificate with a join token, connects to
// xDS with it, serves "default" and "ROOTCA" to its own listeners and
// clusters, and the pair talks Istio mutual TLS. Certificates live a few
// seconds, so they rotate under load.
package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// This test's own loopback block: sidecars on 127.0.43.x, apps on 127.0.44.x.
const (
	curlIP, httpbinIP = "127.0.43.1", "127.0.43.2"
	httpbinAppIP      = "127.0.44.2"
	proxyPort         = 15080
	httpbinPort       = 8000
)

const services = `
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  ports: [{port: 8000, name: http}]
  selector: {app: httpbin}
`

type mesh struct {
	cp            *server.Server
	dir           string
	curl, httpbin *bootstrap.Proxy
}

func startCP(t *testing.T, ttl time.Duration) (*server.Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "config")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(services), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := server.New(server.Options{ConfigDir: dir, SecureAddress: "127.0.0.1:0", MonitoringAddress: "127.0.0.1:0",
		TokenDir: "-", Debounce: 20 * time.Millisecond, CA: server.CAOptions{CertTTL: ttl},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cp.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cp, dir
}

func startProxy(t *testing.T, cp *server.Server, dir, name, ip string, extra ...string) *bootstrap.Proxy {
	t.Helper()
	root := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(root, cp.CA().TrustBundle(), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := cp.Tokens().Create("foo", name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, name+".token")
	if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--xds", cp.SecureAddr(), "--root-cert", root, "--token-file", tokFile,
		"--name", name, "--namespace", "foo", "--service-account", name, "--labels", "app=" + name, "--ip", ip,
		"--admin-port", "0", "--health-port", "0", "--stats-port", "0", "--merged-port", "0"}, extra...)
	cfg, err := bootstrap.Parse("sidecar", args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := bootstrap.Start(ctx, cfg, slog.New(slog.NewTextHandler(logOut, nil)), new(slog.LevelVar))
	if err != nil {
		cancel()
		t.Skipf("cannot start %s on %s: %v", name, ip, err)
	}
	t.Cleanup(func() { cancel(); p.Wait() })
	return p
}

func setup(t *testing.T, ttl time.Duration) *mesh {
	cp, dir := startCP(t, ttl)
	meshtest.HTTPHeadersAt(t, fmt.Sprintf("%s:%d", httpbinAppIP, httpbinPort))
	m := &mesh{cp: cp, dir: dir}
	m.httpbin = startProxy(t, cp, dir, "httpbin", httpbinIP, "--app-address", httpbinAppIP, "--ports", "http:8000:HTTP")
	m.curl = startProxy(t, cp, dir, "curl", curlIP, "--proxy-port", fmt.Sprint(proxyPort))
	return m
}

// client is curl in the mesh: through its sidecar's HTTP proxy port, with
// keep-alive (connections persist across rotations).
func client() *http.Client {
	pu, _ := url.Parse(fmt.Sprintf("http://%s:%d", curlIP, proxyPort))
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 4}}
}

func headers(c *http.Client) (int, map[string]string, error) {
	resp, err := c.Get(fmt.Sprintf("http://httpbin.foo:%d/headers", httpbinPort))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body struct{ Headers map[string]string }
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &body)
	return resp.StatusCode, body.Headers, nil
}

func eventually(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	meshtest.Eventually(t, what, d, cond)
}

// mtlsUp waits until curl reaches httpbin over mutual TLS: the XFCC header
// httpbin's sidecar sets names curl's verified identity.
func mtlsUp(t *testing.T) {
	c := client()
	eventually(t, "curl -> httpbin over mTLS", 30*time.Second, func() error {
		code, h, err := headers(c)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("status %d", code)
		}
		if x := h["X-Forwarded-Client-Cert"]; !strings.Contains(x, "URI=spiffe://cluster.local/ns/foo/sa/curl") {
			return fmt.Errorf("x-forwarded-client-cert %q lacks curl's SPIFFE URI", x)
		}
		return nil
	})
}

func TestIdentityEndToEnd(t *testing.T) {
	m := setup(t, time.Hour)
	mtlsUp(t)
	for _, p := range []*bootstrap.Proxy{m.curl, m.httpbin} {
		c := p.Identity.Current()
		if c == nil || c.Identity.Namespace != "foo" {
			t.Fatalf("identity %+v", c)
		}
	}
	st := m.cp.XDS().Status()
	if len(st) != 2 {
		t.Fatalf("%d proxies connected, want 2", len(st))
	}
	for _, p := range st {
		if !strings.HasPrefix(p.Identity, "spiffe://cluster.local/ns/foo/sa/") {
			t.Errorf("proxy %s connected without a verified identity (%q)", p.ID, p.Identity)
		}
	}
	// The proxy's admin dump shows both secrets, never the key.
	resp, err := http.Get("http://" + m.curl.Addr("admin") + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dump := string(b)
	for _, name := range []string{"default", "ROOTCA"} {
		if !regexp.MustCompile(`"name":\s*"` + name + `"`).MatchString(dump) {
			t.Errorf("config_dump lacks the %s secret", name)
		}
	}
	if strings.Contains(dump, "PRIVATE KEY") || strings.Contains(dump, "private_key\":") {
		t.Errorf("config_dump shows a private key")
	}

	// weft proxy-config secret: the proxy's certificate, never its key.
	for _, o := range []string{"table", "json"} {
		var out, errb strings.Builder
		code := cli.Main([]string{"proxy-config", "secret", "curl", "--admin", m.curl.Addr("admin"), "-o", o}, nil, &out, &errb)
		if code != 0 {
			t.Fatalf("proxy-config secret -o %s: %d %s", o, code, errb.String())
		}
		if strings.Contains(out.String(), "PRIVATE KEY") {
			t.Errorf("proxy-config secret -o %s prints a private key", o)
		}
		if o == "table" {
			t.Logf("weft proxy-config secret curl:\n%s", out.String())
			for _, want := range []string{"default", "ROOTCA", "spiffe://cluster.local/ns/foo/sa/curl", "ROTATES AT"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("proxy-config secret lacks %q:\n%s", want, out.String())
				}
			}
		}
	}

	// The control plane's monitoring and debug endpoints never show key
	// material (its CA key, its serving key, token keys).
	for _, path := range []string{"/metrics", "/debug/syncz", "/debug/configz", "/debug/registryz", "/api/v1/proxies",
		"/debug/config_dump?proxyID=" + url.QueryEscape(st[0].ID)} {
		resp, err := http.Get("http://" + m.cp.MonitoringAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s shows a private key", path)
		}
	}
}

// TestRotationUnderLoad: certificates of 4 s (renewed every ~2 s) while
// clients loop through the sidecar pair over mTLS, on kept-alive and on
// fresh connections: no request may fail across at least two rotations of
// each proxy, and new handshakes at httpbin's inbound port present the
// renewed certificate.
func TestRotationUnderLoad(t *testing.T) {
	m := setup(t, 4*time.Second)
	mtlsUp(t)
	firstServing := inboundSerial(t, m)

	l := startLoad()
	waitRotations(t, m, 2)
	l.check(t)
	if s := inboundSerial(t, m); s == firstServing {
		t.Errorf("httpbin's inbound port still presents serial %s after rotations", s)
	}
}

// inboundSerial handshakes with httpbin's inbound port as a mesh client
// (a certificate of the mesh, ALPN istio) and returns the serial of the
// certificate it presents.
func inboundSerial(t *testing.T, m *mesh) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	s, err := m.cp.CA().SignCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		meshtls.Identity{Namespace: "foo", ServiceAccount: "prober"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{s.Cert.Raw}, PrivateKey: key}
	conn, err := tls.Dial("tcp", fmt.Sprintf("%s:%d", httpbinIP, httpbinPort), &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: m.cp.CA().Pool(), NextProtos: []string{"istio-http/1.1", "istio"},
		InsecureSkipVerify: true, // SPIFFE certificates have no DNS name; the chain is checked below
	})
	if err != nil {
		t.Fatalf("TLS to httpbin's inbound port: %v", err)
	}
	defer conn.Close()
	peer := conn.ConnectionState().PeerCertificates[0]
	if id, err := meshtls.CertIdentity(peer); err != nil || id.ServiceAccount != "httpbin" {
		t.Fatalf("httpbin presents %v (%v)", id, err)
	}
	if _, err := peer.Verify(x509.VerifyOptions{Roots: m.cp.CA().Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("httpbin's certificate does not verify: %v", err)
	}
	return peer.SerialNumber.Text(16)
}

var logOut io.Writer = io.Discard

func init() {
	if os.Getenv("WEFT_TEST_LOG") != "" {
		logOut = os.Stderr
	}
}

// load loops requests through the sidecar pair: two clients on kept-alive
// connections, one opening a connection per request.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad() *load {
	l := &load{stop: make(chan struct{})}
	for i := range 3 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := client()
			if i == 2 {
				c.Transport.(*http.Transport).DisableKeepAlives = true
			}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, h, err := headers(c)
				if err == nil && code == 200 && strings.Contains(h["X-Forwarded-Client-Cert"], "spiffe://cluster.local/ns/foo/sa/curl") {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				if len(l.errs) < 10 {
					l.errs = append(l.errs, fmt.Sprintf("code %d err %v xfcc %q", code, err, h["X-Forwarded-Client-Cert"]))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// check stops the load and fails the test if any request failed.
func (l *load) check(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("%d requests, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Fatalf("%d requests failed: %v", l.failed.Load(), l.errs)
	}
	if l.ok.Load() < 20 {
		t.Fatalf("only %d requests", l.ok.Load())
	}
}

// waitRotations waits until both proxies renewed n more times.
func waitRotations(t *testing.T, m *mesh, n int64) {
	t.Helper()
	c0, h0 := m.curl.Identity.Rotations(), m.httpbin.Identity.Rotations()
	deadline := time.Now().Add(60 * time.Second)
	for m.curl.Identity.Rotations()-c0 < n || m.httpbin.Identity.Rotations()-h0 < n {
		if time.Now().After(deadline) {
			t.Fatalf("rotations: curl %d, httpbin %d; want %d more each", m.curl.Identity.Rotations()-c0, m.httpbin.Identity.Rotations()-h0, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRootRotationUnderLoad: a new root is added to the trust bundle (the
// proxies pick it up at their next renewal), then signs; the old root stays
// trusted. No request fails, and the proxies end up with certificates of
// the new root while their bundle still holds the old one.
func TestRootRotationUnderLoad(t *testing.T) {
	m := setup(t, 4*time.Second)
	mtlsUp(t)
	oldRoot := m.cp.CA().SigningCert()
	l := startLoad()
	if err := m.cp.CA().Rotate(); err != nil {
		t.Fatal(err)
	}
	// Both proxies renew, and so receive the bundle with both roots.
	waitRotations(t, m, 1)
	for _, p := range []*bootstrap.Proxy{m.curl, m.httpbin} {
		if n := strings.Count(string(p.Identity.Current().BundlePEM), "BEGIN CERTIFICATE"); n != 2 {
			t.Fatalf("bundle holds %d roots during the rotation, want 2", n)
		}
	}
	// The grace has passed (the CA's default is the certificate TTL): the
	// new root signs from now on, including the control plane's own
	// serving certificate.
	eventually(t, "the new root signs", 10*time.Second, func() error {
		if _, err := m.cp.CA().Advance(); err != nil {
			return err
		}
		if m.cp.CA().SigningCert().Equal(oldRoot) {
			return fmt.Errorf("old root still signs")
		}
		return nil
	})
	waitRotations(t, m, 2)
	l.check(t)
	for _, p := range []*bootstrap.Proxy{m.curl, m.httpbin} {
		c := p.Identity.Current()
		if err := c.Leaf.CheckSignatureFrom(m.cp.CA().SigningCert()); err != nil {
			t.Errorf("%s's certificate is not from the new root: %v", c.Identity, err)
		}
		if !strings.Contains(string(c.BundlePEM), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldRoot.Raw}))) {
			t.Errorf("%s's bundle dropped the old root while its certificates may be in use", c.Identity)
		}
	}
}

// TestClaimedIdentityIgnored: a proxy holding a token for foo/liar that
// claims namespace bar gets a certificate for foo/liar (the token's
// identity, not its claim) and its xDS stream is refused, so it never gets
// bar's config, secrets or registration.
func TestClaimedIdentityIgnored(t *testing.T) {
	cp, dir := startCP(t, time.Hour)
	root := filepath.Join(dir, "root-cert.pem")
	os.WriteFile(root, cp.CA().TrustBundle(), 0o644)
	tok, _ := cp.Tokens().Create("foo", "liar", time.Hour)
	tokFile := filepath.Join(dir, "liar.token")
	os.WriteFile(tokFile, []byte(tok), 0o600)
	cfg, err := bootstrap.Parse("sidecar", []string{"--xds", cp.SecureAddr(), "--root-cert", root, "--token-file", tokFile,
		"--name", "liar", "--namespace", "bar", "--service-account", "admin", "--ip", "127.0.43.9",
		"--admin-port", "0", "--health-port", "0", "--stats-port", "0", "--merged-port", "0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := bootstrap.Start(ctx, cfg, slog.New(slog.NewTextHandler(logOut, nil)), new(slog.LevelVar))
	if err != nil {
		cancel()
		t.Skipf("cannot start the proxy: %v", err)
	}
	defer func() { cancel(); p.Wait() }()
	eventually(t, "the proxy's certificate", 20*time.Second, func() error {
		if p.Identity.Current() == nil {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	if got := p.Identity.Current().Identity.String(); got != "spiffe://cluster.local/ns/foo/sa/liar" {
		t.Fatalf("certificate for %s, want the token's identity", got)
	}
	eventually(t, "the mismatch is refused and counted", 20*time.Second, func() error {
		if n := cp.XDS().Metrics().IdentityMismatches(); n == 0 {
			return fmt.Errorf("no mismatch counted")
		}
		return nil
	})
	if st := cp.XDS().Status(); len(st) != 0 {
		t.Fatalf("the lying proxy is connected: %+v", st)
	}
	select {
	case <-p.XDS.Ready():
		t.Fatal("the lying proxy got config")
	default:
	}
}
