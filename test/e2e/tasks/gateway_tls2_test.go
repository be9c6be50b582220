package tasks

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestIngressSNIPassthrough is Istio's "Ingress Gateway without TLS
// Termination": the gateway routes port 443 by SNI and passes TLS through,
// so the client sees the backend's own certificate (the external site's
// CA, which the gateway does not have) and the backend sees HTTPS.
func TestIngressSNIPassthrough(t *testing.T) {
	m := mesh(t)
	if m.External == nil || captureMode {
		t.Skip("the stand-in external site needs root (ports 80/443) and explicit mode")
	}
	caPEM, err := os.ReadFile(m.External.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	weft.Apply(t, kit.Task("ingress-sni-passthrough/passthrough.yaml"))
	cfg := &tls.Config{RootCAs: pool}
	get := func(host string) (string, error) {
		c := cfg.Clone()
		c.ServerName = host
		tr := &http.Transport{Proxy: nil, TLSClientConfig: c, DisableKeepAlives: true, DialContext: dialIngressTLS}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + host + "/politics")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		return string(b), nil
	}
	meshtest.Eventually(t, "edition.cnn.com passed through the gateway", 15*time.Second, func() error {
		body, err := get("edition.cnn.com")
		if err != nil {
			return err
		}
		if !strings.Contains(body, "via https") {
			return fmt.Errorf("the backend did not see TLS: %.200s", body)
		}
		return nil
	})
	// Another SNI matches no chain: the gateway closes the connection.
	c := cfg.Clone()
	c.ServerName, c.InsecureSkipVerify = "other.example.com", true
	if conn, err := tls.DialWithDialer(&netDialer, "tcp", ingressIP+":8443", c); err == nil {
		conn.Close()
		t.Error("an SNI no route names completed a handshake")
	}
}

// TestEgressTLSOrigination is Istio's "Egress TLS Origination": the app
// sends plain HTTP to edition.cnn.com, its sidecar originates TLS (SIMPLE,
// the site's CA from caCertificates) to port 443.
func TestEgressTLSOrigination(t *testing.T) {
	m := mesh(t)
	if m.External == nil {
		t.Skip("the stand-in external site needs root (ports 80/443)")
	}
	client := kit.ViaSidecar(m, "curl")
	yaml := strings.ReplaceAll(kit.Task("egress-tls-origination/origination.yaml"), "/tmp/weft-demo/logs/external-ca.pem", m.External.CAFile)
	weft.Apply(t, yaml)
	meshtest.Eventually(t, "http://edition.cnn.com/politics originated as TLS", 15*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status != 200 || !strings.Contains(r.Body, "via https") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	})
	// With a CA that did not sign the site, origination fails closed.
	bad := strings.ReplaceAll(yaml, m.External.CAFile, writeFile(t, t.TempDir()+"/other-ca.pem", newTestCA(t, "other").pem))
	weft.Apply(t, bad)
	meshtest.Eventually(t, "a wrong CA refuses the site", 15*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status < 500 {
			return fmt.Errorf("status %d with a CA that did not sign the site", r.Status)
		}
		return nil
	})
}

// TestEgressGatewayTLSOrigination is Istio's "Egress Gateways with TLS
// Origination": sidecar → egress gateway over Istio mutual TLS, gateway →
// edition.cnn.com:443 over TLS it originates (SIMPLE, the site's CA).
func TestEgressGatewayTLSOrigination(t *testing.T) {
	m := mesh(t)
	if m.External == nil {
		t.Skip("the stand-in external site needs root (ports 80/443)")
	}
	client := kit.ViaSidecar(m, "curl")
	weft.Apply(t, strings.ReplaceAll(kit.Task("egress-gateway-tls-origination/origination.yaml"), "/tmp/weft-demo/logs/external-ca.pem", m.External.CAFile))
	egressRequests := func() int {
		r := kit.Get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload("istio-egressgateway").AdminURL()+"/stats", nil)
		re := regexp.MustCompile(`cluster\.outbound\|443\|\|edition\.cnn\.com\.upstream_rq_total: (\d+)`)
		if mm := re.FindStringSubmatch(r.Body); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			return n
		}
		return 0
	}
	before := egressRequests()
	meshtest.Eventually(t, "http://edition.cnn.com/politics via the egress gateway, as HTTPS", 15*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status != 200 || !strings.Contains(r.Body, "via https") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		if n := egressRequests(); n <= before {
			return fmt.Errorf("the egress gateway's edition.cnn.com:443 cluster saw no request (%d)", n)
		}
		return nil
	})
}

// TestEgressGatewayMutualTLSOrigination: the egress gateway originates
// mutual TLS with a credentialName client certificate to the demo's site
// that requires one (weft sample external --mutual on 127.0.20.2, started
// by the demo like the other external sites). Without the Secret the site
// refuses the gateway's handshake.
func TestEgressGatewayMutualTLSOrigination(t *testing.T) {
	m := mesh(t)
	if m.External == nil || m.External.Mutual == nil || captureMode {
		t.Skip("the stand-in external sites need root (port 443) and explicit mode")
	}
	site := m.External.Mutual
	host := site.Host
	weft.Apply(t, kit.Task("egress-gateway-mtls-origination/origination.yaml"))
	client := kit.ViaSidecar(m, "curl")
	// Before the client credential exists the gateway has no client
	// certificate to offer: the site refuses the handshake.
	meshtest.Eventually(t, "no client credential, no page", 20*time.Second, func() error {
		r := kit.Get(t, client, "http://"+host+"/politics", nil)
		if r.Status < 500 {
			return fmt.Errorf("status %d without a client certificate: %.200s", r.Status, r.Body)
		}
		return nil
	})
	// The client credential, as Istio's task: tls.crt, tls.key, ca.crt.
	createSecret(t, "client-credential", site.ClientCert, site.ClientKey, site.CAFile)
	meshtest.Eventually(t, "http://"+host+" via the egress gateway with a client certificate", 20*time.Second, func() error {
		r := kit.Get(t, client, "http://"+host+"/politics", nil)
		if r.Status != 200 || !strings.Contains(r.Body, "via https") {
			return fmt.Errorf("status %d: %.300s", r.Status, r.Body)
		}
		return nil
	})
}
