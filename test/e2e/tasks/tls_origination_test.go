package tasks

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestOriginationSubjectAltNames: SIMPLE origination checks the site's
// certificate against subjectAltNames; a name the certificate lacks fails
// closed with Envoy's upstream-failure reply (503, UF), and the right one
// passes.
func TestOriginationSubjectAltNames(t *testing.T) {
	m := mesh(t)
	if m.External == nil || captureMode {
		t.Skip("the stand-in external site needs root (ports 80/443) and explicit mode")
	}
	client := kit.ViaSidecar(m, "curl")
	base := strings.ReplaceAll(kit.Task("egress-tls-origination/origination.yaml"), "/tmp/weft-demo/logs/external-ca.pem", m.External.CAFile)
	withSAN := func(san string) string {
		return strings.Replace(base, "caCertificates: "+m.External.CAFile, "caCertificates: "+m.External.CAFile+"\n        subjectAltNames: ["+san+"]", 1)
	}
	if y := withSAN("x"); y == base {
		t.Fatal("the task YAML changed: no caCertificates line to add subjectAltNames after")
	}
	const cluster = "outbound|80||edition.cnn.com"
	weft.Apply(t, withSAN("wrong.example.com"))
	before := clusterStat(t, m, "curl", cluster, "upstream_cx_connect_fail")
	meshtest.Eventually(t, "a SAN the site's certificate lacks fails closed", 15*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status != 503 || !strings.Contains(r.Body, "upstream connect error") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		if n := clusterStat(t, m, "curl", cluster, "upstream_cx_connect_fail"); n <= before {
			return fmt.Errorf("%s upstream_cx_connect_fail still %d", cluster, n)
		}
		return nil
	})
	weft.Apply(t, withSAN("edition.cnn.com"))
	meshtest.Eventually(t, "the site's own name passes", 15*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status != 200 || !strings.Contains(r.Body, "via https") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	})
}

// nginxEntry admits the demo's client-certificate site: plain HTTP on 80
// that the sidecar sends to 443 (targetPort), as the TLS origination task.
const nginxEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: my-nginx-sidecar
spec:
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
  ports:
  - number: 80
    name: http
    protocol: HTTP
    targetPort: 443
  resolution: STATIC
  endpoints:
  - address: %s
`

// TestSidecarMutualOrigination: a DestinationRule with tls.mode MUTUAL
// makes the app's own sidecar present a client certificate to a site that
// requires one — from files (clientCertificate/privateKey/caCertificates)
// and from a credentialName Secret in the sidecar's namespace. A Secret in
// another namespace is not served, and weft x describe says so.
func TestSidecarMutualOrigination(t *testing.T) {
	m := mesh(t)
	if m.External == nil || m.External.Mutual == nil || captureMode {
		t.Skip("the stand-in external sites need root (port 443) and explicit mode")
	}
	site := m.External.Mutual
	client := kit.ViaSidecar(m, "curl")
	url := "http://" + site.Host + "/politics"
	weft.Apply(t, fmt.Sprintf(nginxEntry, site.IP))
	dr := func(tls string) string {
		return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
` + tls
	}
	page := func() error {
		r := kit.Get(t, client, url, nil)
		if r.Status != 200 || !strings.Contains(r.Body, "via https") {
			return fmt.Errorf("status %d: %.200s", r.Status, r.Body)
		}
		return nil
	}
	refused := func() error {
		if r := kit.Get(t, client, url, nil); r.Status != 503 {
			return fmt.Errorf("status %d without an acceptable client certificate: %.200s", r.Status, r.Body)
		}
		return nil
	}
	// SIMPLE: the site's CA but no client certificate.
	weft.Apply(t, dr(fmt.Sprintf("        mode: SIMPLE\n        sni: %s\n        caCertificates: %s\n", site.Host, site.CAFile)))
	meshtest.Eventually(t, "SIMPLE (no client certificate) is refused by the site", 15*time.Second, refused)
	// MUTUAL from files.
	weft.Apply(t, dr(fmt.Sprintf("        mode: MUTUAL\n        sni: %s\n        clientCertificate: %s\n        privateKey: %s\n        caCertificates: %s\n",
		site.Host, site.ClientCert, site.ClientKey, site.CAFile)))
	meshtest.Eventually(t, "MUTUAL with client certificate files", 15*time.Second, page)

	// MUTUAL from credentialName: only the sidecar's own namespace counts.
	if out, err := weft.Output(t, "", "create", "secret", "tls", "nginx-client", "--cert", site.ClientCert, "--key", site.ClientKey,
		"--cacert", site.CAFile, "-n", "istio-system"); err != nil {
		t.Fatalf("weft create secret tls: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		weft.Output(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: nginx-client, namespace: istio-system}\n", "delete", "-f", "-")
	})
	weft.Apply(t, dr(fmt.Sprintf("        mode: MUTUAL\n        sni: %s\n        credentialName: nginx-client\n", site.Host)))
	meshtest.Eventually(t, "a credential in istio-system is not the default-namespace sidecar's", 15*time.Second, refused)
	meshtest.Eventually(t, "weft x describe says where the credential is", 10*time.Second, func() error {
		out, err := weft.Output(t, "", "x", "describe", "workload", "curl")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		if !strings.Contains(out, `credentialName "nginx-client": Secret not found in namespace default; it exists in istio-system`) {
			return fmt.Errorf("describe says:\n%s", out)
		}
		return nil
	})
	if out, err := weft.Output(t, "", "create", "secret", "tls", "nginx-client", "--cert", site.ClientCert, "--key", site.ClientKey,
		"--cacert", site.CAFile, "-n", "default"); err != nil {
		t.Fatalf("weft create secret tls -n default: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		weft.Output(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: nginx-client, namespace: default}\n", "delete", "-f", "-")
	})
	meshtest.Eventually(t, "MUTUAL with credentialName in the sidecar's namespace", 15*time.Second, page)
}

// TestGatewayFileCertificates: Gateway TLS from file paths
// (serverCertificate/privateKey, and caCertificates for MUTUAL) instead of
// credentialName; the gateway process reads the files itself.
func TestGatewayFileCertificates(t *testing.T) {
	mesh(t)
	if captureMode {
		t.Skip("explicit mode only")
	}
	dir := t.TempDir()
	ca := newTestCA(t, "files.example.com")
	cert, key, serial := ca.leaf(t, dir, "httpbin.example.com", false)
	clientCert, clientKey, _ := ca.leaf(t, dir, "client.example.com", true)
	caFile := writeFile(t, dir+"/ca.pem", ca.pem)
	gw := func(tlsYAML string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
%s    hosts:
    - httpbin.example.com
`, tlsYAML)
	}
	weft.Apply(t, kit.Task("secure-gateways-simple/gateway.yaml")) // the httpbin VirtualService
	weft.Apply(t, gw(fmt.Sprintf("      mode: SIMPLE\n      serverCertificate: %s\n      privateKey: %s\n", cert, key)))
	base := &tls.Config{RootCAs: ca.pool()}
	meshtest.Eventually(t, "SIMPLE with file certificates", 15*time.Second, func() error {
		code, got, err := httpsGet("httpbin.example.com", "/status/418", base)
		if err != nil {
			return err
		}
		if code != 418 || got.Cmp(serial) != 0 {
			return fmt.Errorf("status %d, serial %v (want 418, %v)", code, got, serial)
		}
		return nil
	})
	weft.Apply(t, gw(fmt.Sprintf("      mode: MUTUAL\n      serverCertificate: %s\n      privateKey: %s\n      caCertificates: %s\n", cert, key, caFile)))
	meshtest.Eventually(t, "MUTUAL with a caCertificates file refuses a client without a certificate", 15*time.Second, func() error {
		if _, _, err := httpsGet("httpbin.example.com", "/status/418", base); err == nil {
			return fmt.Errorf("no client certificate, still served")
		}
		return nil
	})
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{pair}
	if code, _, err := httpsGet("httpbin.example.com", "/status/418", withCert); err != nil || code != 418 {
		t.Errorf("MUTUAL with a client certificate from the file CA: %d %v", code, err)
	}
}
