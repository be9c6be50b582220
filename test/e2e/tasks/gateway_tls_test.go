package tasks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// testCA issues the certificates of Istio's Secure Gateways task
// (example.com root, one leaf per host, a client certificate).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var (
	serialSeq atomic.Int64
	netDialer = net.Dialer{Timeout: 5 * time.Second}
)

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serialSeq.Add(1) + 1000), Subject: pkix.Name{CommonName: cn, Organization: []string{cn + " Inc."}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// leaf issues a certificate for host (server) or a client; it returns the
// PEM files' paths and the serial.
func (ca *testCA) leaf(t *testing.T, dir, host string, client bool) (certFile, keyFile string, serial *big.Int) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial = big.NewInt(serialSeq.Add(1) + 1000)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	base := filepath.Join(dir, fmt.Sprintf("%s-%s", host, serial))
	certFile, keyFile = base+".crt", base+".key"
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, serial
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// createSecret runs `weft create secret tls` in istio-system (the ingress
// gateway's namespace) and deletes the Secret when the test ends.
func createSecret(t *testing.T, name, cert, key, cacert string) {
	t.Helper()
	args := []string{"create", "secret", "tls", name, "--cert", cert, "--key", key, "-n", "istio-system"}
	if cacert != "" {
		args = append(args, "--cacert", cacert)
	}
	if out, err := weft.Output(t, "", args...); err != nil {
		t.Fatalf("weft create secret tls: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		doc := "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: istio-system}\n"
		if out, err := weft.Output(t, doc, "delete", "-f", "-"); err != nil && !strings.Contains(out, "not found") {
			t.Logf("weft delete secret: %v\n%s", err, out)
		}
	})
}

// dialIngressTLS connects to the ingress gateway's 443 listener (8443),
// whatever host the URL names (curl --resolve).
func dialIngressTLS(ctx context.Context, network, _ string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, network, net.JoinHostPort(ingressIP, "8443"))
}

// httpsGet does one request on a new TLS connection to the ingress
// gateway's 443 listener (8443) with SNI host; it returns the status and
// the serial of the certificate the gateway presented.
func httpsGet(host, path string, cfg *tls.Config) (int, *big.Int, error) {
	cfg = cfg.Clone()
	cfg.ServerName = host
	tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg, DisableKeepAlives: true, DialContext: dialIngressTLS}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	var serial *big.Int
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		serial = resp.TLS.PeerCertificates[0].SerialNumber
	}
	return resp.StatusCode, serial, nil
}

// TestSecureGateways is Istio's "Secure Gateways" task on the demo's
// ingress gateway: credentials made with `weft create secret tls`, a
// single host (SIMPLE), several hosts told apart by SNI, mutual TLS,
// certificate rotation under load, httpsRedirect and the TLS version floor.
func TestSecureGateways(t *testing.T) {
	if captureMode {
		t.Skip("runs in explicit mode only")
	}
	mesh(t)
	dir := t.TempDir()
	ca := newTestCA(t, "example.com")
	caFile := writeFile(t, filepath.Join(dir, "example.com.crt"), ca.pem)
	hbCert, hbKey, hbSerial := ca.leaf(t, dir, "httpbin.example.com", false)
	base := &tls.Config{RootCAs: ca.pool()}

	// Single host.
	createSecret(t, "httpbin-credential", hbCert, hbKey, "")
	weft.Apply(t, kit.Task("secure-gateways-simple/gateway.yaml"))
	meshtest.Eventually(t, "https://httpbin.example.com/status/418", 15*time.Second, func() error {
		code, serial, err := httpsGet("httpbin.example.com", "/status/418", base)
		if err != nil {
			return err
		}
		if code != 418 || serial.Cmp(hbSerial) != 0 {
			return fmt.Errorf("status %d, serial %v (want 418, %v)", code, serial, hbSerial)
		}
		return nil
	})

	// TLS 1.0 and 1.1 are refused without minProtocolVersion.
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		cfg := base.Clone()
		cfg.MinVersion, cfg.MaxVersion = v, v
		if _, _, err := httpsGet("httpbin.example.com", "/status/200", cfg); err == nil {
			t.Errorf("TLS version %x accepted by default", v)
		}
	}

	// minProtocolVersion: TLSV1_3 refuses a TLS 1.2 client.
	weft.Apply(t, strings.Replace(kit.Task("secure-gateways-simple/gateway.yaml"), "mode: SIMPLE", "mode: SIMPLE\n      minProtocolVersion: TLSV1_3", 1))
	meshtest.Eventually(t, "minProtocolVersion TLSV1_3", 15*time.Second, func() error {
		cfg := base.Clone()
		cfg.MaxVersion = tls.VersionTLS12
		if code, _, err := httpsGet("httpbin.example.com", "/status/200", cfg); err == nil {
			return fmt.Errorf("TLS 1.2 client: %d", code)
		}
		if code, _, err := httpsGet("httpbin.example.com", "/status/200", base); err != nil || code != 200 {
			return fmt.Errorf("TLS 1.3 client: %d %v", code, err)
		}
		return nil
	})
	weft.Apply(t, kit.Task("secure-gateways-simple/gateway.yaml"))

	// Multiple hosts on one port, each with its own certificate by SNI.
	ca2 := newTestCA(t, "helloworld.example.com-root")
	hwCert, hwKey, hwSerial := ca2.leaf(t, dir, "helloworld.example.com", false)
	createSecret(t, "helloworld-credential", hwCert, hwKey, "")
	weft.Apply(t, kit.Task("secure-gateways-multiple-hosts/gateway.yaml"))
	meshtest.Eventually(t, "https://helloworld.example.com/productpage", 15*time.Second, func() error {
		code, serial, err := httpsGet("helloworld.example.com", "/productpage", &tls.Config{RootCAs: ca2.pool()})
		if err != nil {
			return err
		}
		if code != 200 || serial.Cmp(hwSerial) != 0 {
			return fmt.Errorf("status %d, serial %v (want 200, %v)", code, serial, hwSerial)
		}
		return nil
	})
	if code, serial, err := httpsGet("httpbin.example.com", "/status/418", base); err != nil || code != 418 || serial.Cmp(hbSerial) != 0 {
		t.Errorf("httpbin.example.com beside helloworld: %d %v %v", code, serial, err)
	}

	// Mutual TLS: the client CA in the credential's ca.crt.
	clientCert, clientKey, _ := ca.leaf(t, dir, "client.example.com", true)
	createSecret(t, "httpbin-credential", hbCert, hbKey, caFile)
	weft.Apply(t, kit.Task("secure-gateways-mutual/gateway.yaml"))
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{pair}
	meshtest.Eventually(t, "MUTUAL refuses a client without a certificate", 15*time.Second, func() error {
		if code, _, err := httpsGet("httpbin.example.com", "/status/418", base); err == nil {
			return fmt.Errorf("no client certificate: %d, want a failed handshake", code)
		}
		return nil
	})
	meshtest.Eventually(t, "MUTUAL with a client certificate", 15*time.Second, func() error {
		code, _, err := httpsGet("httpbin.example.com", "/status/418", withCert)
		if err != nil || code != 418 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	// The client CA in a separate NAME-cacert Secret (generic, key cacert),
	// as Istio accepts it.
	createSecret(t, "httpbin-credential", hbCert, hbKey, "")
	weft.Apply(t, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: httpbin-credential-cacert, namespace: istio-system}\nstringData:\n  cacert: |\n    %s\n",
		strings.ReplaceAll(strings.TrimSpace(string(ca.pem)), "\n", "\n    ")))
	meshtest.Eventually(t, "MUTUAL with the CA from httpbin-credential-cacert", 15*time.Second, func() error {
		if code, _, err := httpsGet("httpbin.example.com", "/status/418", withCert); err != nil || code != 418 {
			return fmt.Errorf("with a client certificate: %d %v", code, err)
		}
		if code, _, err := httpsGet("httpbin.example.com", "/status/418", base); err == nil {
			return fmt.Errorf("without a client certificate: %d", code)
		}
		return nil
	})
	other := newTestCA(t, "other")
	oc, ok, _ := other.leaf(t, dir, "intruder.example.com", true)
	if p, err := tls.LoadX509KeyPair(oc, ok); err == nil {
		cfg := base.Clone()
		cfg.Certificates = []tls.Certificate{p}
		if code, _, err := httpsGet("httpbin.example.com", "/status/418", cfg); err == nil {
			t.Errorf("a client certificate from another CA was accepted: %d", code)
		}
	}

	// OPTIONAL_MUTUAL: a client certificate is checked when given, not
	// required.
	weft.Apply(t, strings.Replace(kit.Task("secure-gateways-mutual/gateway.yaml"), "mode: MUTUAL", "mode: OPTIONAL_MUTUAL", 1))
	meshtest.Eventually(t, "OPTIONAL_MUTUAL", 15*time.Second, func() error {
		if code, _, err := httpsGet("httpbin.example.com", "/status/418", base); err != nil || code != 418 {
			return fmt.Errorf("without a client certificate: %d %v", code, err)
		}
		if code, _, err := httpsGet("httpbin.example.com", "/status/418", withCert); err != nil || code != 418 {
			return fmt.Errorf("with a client certificate: %d %v", code, err)
		}
		return nil
	})

	// Rotation: back to SIMPLE, a client loops (new connections and one
	// kept alive) while the certificate is replaced.
	weft.Apply(t, kit.Task("secure-gateways-simple/gateway.yaml"))
	meshtest.Eventually(t, "SIMPLE again", 15*time.Second, func() error {
		code, _, err := httpsGet("httpbin.example.com", "/status/200", base)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	var (
		mu       sync.Mutex
		failures []string
		requests int
		newSeen  time.Time
	)
	newCert, newKey, newSerial := ca.leaf(t, dir, "httpbin.example.com", false)
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: func() *tls.Config {
		c := base.Clone()
		c.ServerName = "httpbin.example.com"
		return c
	}(), DialContext: dialIngressTLS}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var code int
				var serial *big.Int
				var err error
				if w == 0 {
					code, serial, err = httpsGet("httpbin.example.com", "/status/200", base)
				} else {
					var resp *http.Response
					if resp, err = keep.Get("https://httpbin.example.com/status/200"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						code = resp.StatusCode
					}
				}
				mu.Lock()
				requests++
				if err != nil || code != 200 {
					failures = append(failures, fmt.Sprintf("worker %d: %d %v", w, code, err))
				}
				if serial != nil && serial.Cmp(newSerial) == 0 && newSeen.IsZero() {
					newSeen = time.Now()
				}
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond) // let the loop run on the old certificate
	replaced := time.Now()
	createSecret(t, "httpbin-credential", newCert, newKey, "")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		seen := !newSeen.IsZero()
		mu.Unlock()
		if seen {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // and a little on the new one
	close(stop)
	wg.Wait()
	keep.CloseIdleConnections()
	mu.Lock()
	defer mu.Unlock()
	if newSeen.IsZero() {
		t.Errorf("the new certificate (serial %v) was not seen within 5 s of the Secret's replacement", newSerial)
	} else {
		t.Logf("rotation: %d requests, new serial seen %v after weft create secret", requests, newSeen.Sub(replaced).Round(time.Millisecond))
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during rotation; first: %s", len(failures), requests, failures[0])
	}
}

// TestGatewayHTTPSRedirect: a server with httpsRedirect answers plaintext
// requests with a 301 to https.
func TestGatewayHTTPSRedirect(t *testing.T) {
	if captureMode {
		t.Skip("runs in explicit mode only")
	}
	mesh(t)
	weft.Apply(t, kit.Task("secure-gateways-redirect/gateway.yaml"))
	noFollow := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	meshtest.Eventually(t, "301 to https", 15*time.Second, func() error {
		r := kit.Get(t, noFollow, ingressURL("/status/200"), map[string]string{"Host": "httpbin.example.com"})
		if r.Status != http.StatusMovedPermanently || !strings.HasPrefix(r.Header.Get("Location"), "https://httpbin.example.com") {
			return fmt.Errorf("%d Location %q", r.Status, r.Header.Get("Location"))
		}
		return nil
	})
}
