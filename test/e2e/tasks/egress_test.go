package tasks

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

const cnnServiceEntry = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
`

// TM-11 and TM-13: ServiceEntry admits the external host, REGISTRY_ONLY
// blocks unknown hosts with 502, and an egress gateway carries the traffic.
// The external site is a loopback stand-in on ports 80/443, so this needs root.
func TestEgress(t *testing.T) {
	m := mesh(t)
	if m.External == nil {
		t.Skip("the stand-in external site needs root (ports 80/443)")
	}
	client := kit.ViaSidecar(m, "curl")
	setOutboundPolicy(t, "REGISTRY_ONLY")
	meshtest.Eventually(t, "unknown host blocked with 502", 10*time.Second, func() error {
		if r := kit.Get(t, client, "http://edition.cnn.com/politics", nil); r.Status != 502 {
			return fmt.Errorf("REGISTRY_ONLY, unregistered host: status %d", r.Status)
		}
		return nil
	})
	weft.Apply(t, cnnServiceEntry)
	meshtest.Eventually(t, "ServiceEntry admits edition.cnn.com", 10*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status == 502 || r.Status < 0 {
			return fmt.Errorf("status %d: %.100s", r.Status, r.Body)
		}
		return nil
	})
	if r := kit.Get(t, client, "http://unknown.example.org/", nil); r.Status != 502 {
		t.Errorf("other unknown hosts must stay blocked: %d", r.Status)
	}

	weft.Apply(t, kit.Task("egress-gateway/egress-gateway.yaml"))
	egressStats := func() int {
		r := kit.Get(t, &http.Client{Timeout: 5 * time.Second}, m.Workload("istio-egressgateway").AdminURL()+"/stats", nil)
		re := regexp.MustCompile(`cluster\.outbound\|80\|\|edition\.cnn\.com\.upstream_rq_total: (\d+)`)
		if mm := re.FindStringSubmatch(r.Body); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			return n
		}
		return 0
	}
	before := egressStats()
	meshtest.Eventually(t, "traffic flows through the egress gateway", 10*time.Second, func() error {
		r := kit.Get(t, client, "http://edition.cnn.com/politics", nil)
		if r.Status == 502 || r.Status < 0 {
			return fmt.Errorf("status %d", r.Status)
		}
		if n := egressStats(); n <= before {
			return fmt.Errorf("egress gateway upstream_rq_total for edition.cnn.com still %d", n)
		}
		return nil
	})
}
