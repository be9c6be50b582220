package tasks

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// httpsViaSidecar is an HTTPS client that, like curl with HTTPS_PROXY set
// to the sidecar, tunnels with CONNECT through the workload's sidecar and
// runs TLS end to end with the external site, trusting the site's CA.
func httpsViaSidecar(t *testing.T, m *demo.Mesh, workload, caFile string) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	u, _ := url.Parse(m.Workload(workload).ProxyURL())
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true,
	}}
}

// clusterStat reads one counter of a cluster from a workload's proxy stats.
func clusterStat(t *testing.T, m *demo.Mesh, workload, cluster, stat string) int {
	t.Helper()
	r := kit.Get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload(workload).AdminURL()+"/stats", nil)
	re := regexp.MustCompile(`(?m)^cluster\.` + regexp.QuoteMeta(cluster) + `\.` + stat + `: (\d+)$`)
	if mm := re.FindStringSubmatch(r.Body); mm != nil {
		n, _ := strconv.Atoi(mm[1])
		return n
	}
	return 0
}

// fetchSite GETs an https URL and returns the page, failing on anything
// but 200 over TLS.
func fetchSite(c *http.Client, rawURL string) (string, error) {
	resp, err := c.Get(rawURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	if !strings.Contains(string(b), "via https") {
		return "", fmt.Errorf("the site did not see TLS: %.200s", b)
	}
	return string(b), nil
}

// TestEgressGatewayHTTPS is the HTTPS part of Istio's "Egress Gateways":
// the app's own TLS to edition.cnn.com passes the sidecar and the egress
// gateway by SNI (a PASSTHROUGH server and tls: routes); neither proxy
// holds the site's keys, so the app sees the site's own certificate.
func TestEgressGatewayHTTPS(t *testing.T) {
	m := mesh(t)
	if m.External == nil || captureMode {
		t.Skip("the stand-in external site needs root (ports 80/443) and explicit mode")
	}
	client := httpsViaSidecar(t, m, "curl", m.External.CAFile)
	const gwCluster = `outbound|443||edition.cnn.com`
	before := clusterStat(t, m, "istio-egressgateway", gwCluster, "upstream_cx_total")
	weft.Apply(t, kit.Task("egress-gateway-https/egress-gateway-https.yaml"))
	meshtest.Eventually(t, "https://edition.cnn.com through the egress gateway", 15*time.Second, func() error {
		if _, err := fetchSite(client, "https://edition.cnn.com/politics"); err != nil {
			return err
		}
		if n := clusterStat(t, m, "istio-egressgateway", gwCluster, "upstream_cx_total"); n <= before {
			return fmt.Errorf("the egress gateway's %s opened no connection (%d)", gwCluster, n)
		}
		return nil
	})
}

// TestEgressWildcardHosts is Istio's "Egress using Wildcard Hosts": first
// one ServiceEntry for *.wikipedia.org lets the app reach every language
// directly; then, with the single-hosting-server configuration, TLS for
// any *.wikipedia.org name leaves through the egress gateway to
// www.wikipedia.org, whatever the SNI says.
func TestEgressWildcardHosts(t *testing.T) {
	m := mesh(t)
	if m.External == nil || captureMode {
		t.Skip("the stand-in external site needs root (ports 80/443) and explicit mode")
	}
	wiki, www := m.External.Names["en.wikipedia.org"], m.External.Names["www.wikipedia.org"]
	if wiki == "" || www == "" || wiki == www {
		t.Fatalf("the demo's wikipedia names: %v", m.External.Names)
	}
	client := httpsViaSidecar(t, m, "curl", m.External.CAFile)
	setOutboundPolicy(t, "REGISTRY_ONLY")
	weft.Apply(t, kit.Task("egress-wildcard-direct/wikipedia.yaml"))
	for _, lang := range []string{"en", "de"} {
		u := "https://" + lang + ".wikipedia.org/wiki/Main_Page"
		meshtest.Eventually(t, u+" directly", 15*time.Second, func() error {
			page, err := fetchSite(client, u)
			if err != nil {
				return err
			}
			if !strings.Contains(page, "Served-On: "+wiki+":443") || !strings.Contains(page, lang+".wikipedia.org (weft") {
				return fmt.Errorf("not served by %s's own server %s: %.300s", lang, wiki, page)
			}
			return nil
		})
	}
	// A host outside the wildcard stays blocked under REGISTRY_ONLY.
	if _, err := fetchSite(client, "https://edition.cnn.com/"); err == nil {
		t.Error("REGISTRY_ONLY let edition.cnn.com through with only *.wikipedia.org registered")
	}

	const gwCluster = `outbound|443||www.wikipedia.org`
	before := clusterStat(t, m, "istio-egressgateway", gwCluster, "upstream_cx_total")
	weft.Apply(t, kit.Task("egress-wildcard-gateway/wikipedia-gateway.yaml"))
	for _, lang := range []string{"en", "de"} {
		u := "https://" + lang + ".wikipedia.org/wiki/Main_Page"
		meshtest.Eventually(t, u+" through the egress gateway to www.wikipedia.org", 15*time.Second, func() error {
			page, err := fetchSite(client, u)
			if err != nil {
				return err
			}
			if !strings.Contains(page, "Served-On: "+www+":443") || !strings.Contains(page, lang+".wikipedia.org (weft") {
				return fmt.Errorf("not served by www.wikipedia.org (%s) for SNI %s: %.300s", www, lang, page)
			}
			if n := clusterStat(t, m, "istio-egressgateway", gwCluster, "upstream_cx_total"); n <= before {
				return fmt.Errorf("the egress gateway's %s opened no connection (%d)", gwCluster, n)
			}
			return nil
		})
	}
}

// setOutboundPolicy sets the mesh's outboundTrafficPolicy mode until the
// test ends (then back to ALLOW_ANY, the demo's default).
func setOutboundPolicy(t *testing.T, mode string) {
	t.Helper()
	set := func(mode string) {
		out, err := weft.Output(t, fmt.Sprintf(`
apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
  namespace: istio-system
spec:
  outboundTrafficPolicy:
    mode: %s
`, mode), "apply", "-f", "-")
		if err != nil {
			t.Fatalf("setting %s: %v\n%s", mode, err, out)
		}
	}
	set(mode)
	t.Cleanup(func() { set("ALLOW_ANY") })
}
