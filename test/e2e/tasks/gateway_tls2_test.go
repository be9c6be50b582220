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
	apply(t, task("ingress-sni-passthrough/passthrough.yaml"))
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
	eventually(t, 15*time.Second, "edition.cnn.com passed through the gateway", func() error {
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
	client := viaSidecar(m, "curl")
	yaml := strings.ReplaceAll(task("egress-tls-origination/origination.yaml"), "/tmp/weft-demo/logs/external-ca.pem", m.External.CAFile)
	apply(t, yaml)
	eventually(t, 15*time.Second, "http://edition.cnn.com/politics originated as TLS", func() error {
		r := get(t, client, "http://edition.cnn.com/politics", nil)
		if r.status != 200 || !strings.Contains(r.body, "via https") {
			return fmt.Errorf("status %d: %.200s", r.status, r.body)
		}
		return nil
	})
	// With a CA that did not sign the site, origination fails closed.
	bad := strings.ReplaceAll(yaml, m.External.CAFile, writeFile(t, t.TempDir()+"/other-ca.pem", newTestCA(t, "other").pem))
	apply(t, bad)
	eventually(t, 15*time.Second, "a wrong CA refuses the site", func() error {
		r := get(t, client, "http://edition.cnn.com/politics", nil)
		if r.status < 500 {
			return fmt.Errorf("status %d with a CA that did not sign the site", r.status)
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
	client := viaSidecar(m, "curl")
	apply(t, strings.ReplaceAll(task("egress-gateway-tls-origination/origination.yaml"), "/tmp/weft-demo/logs/external-ca.pem", m.External.CAFile))
	egressRequests := func() int {
		r := get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload("istio-egressgateway").AdminURL()+"/stats", nil)
		re := regexp.MustCompile(`cluster\.outbound\|443\|\|edition\.cnn\.com\.upstream_rq_total: (\d+)`)
		if mm := re.FindStringSubmatch(r.body); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			return n
		}
		return 0
	}
	before := egressRequests()
	eventually(t, 15*time.Second, "http://edition.cnn.com/politics via the egress gateway, as HTTPS", func() error {
		r := get(t, client, "http://edition.cnn.com/politics", nil)
		if r.status != 200 || !strings.Contains(r.body, "via https") {
			return fmt.Errorf("status %d: %.200s", r.status, r.body)
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
	apply(t, task("egress-gateway-mtls-origination/origination.yaml"))
	client := viaSidecar(m, "curl")
	// Before the client credential exists the gateway has no client
	// certificate to offer: the site refuses the handshake.
	eventually(t, 20*time.Second, "no client credential, no page", func() error {
		r := get(t, client, "http://"+host+"/politics", nil)
		if r.status < 500 {
			return fmt.Errorf("status %d without a client certificate: %.200s", r.status, r.body)
		}
		return nil
	})
	// The client credential, as Istio's task: tls.crt, tls.key, ca.crt.
	createSecret(t, "client-credential", site.ClientCert, site.ClientKey, site.CAFile)
	eventually(t, 20*time.Second, "http://"+host+" via the egress gateway with a client certificate", func() error {
		r := get(t, client, "http://"+host+"/politics", nil)
		if r.status != 200 || !strings.Contains(r.body, "via https") {
			return fmt.Errorf("status %d: %.300s", r.status, r.body)
		}
		return nil
	})
}
