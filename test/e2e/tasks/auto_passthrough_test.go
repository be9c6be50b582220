package tasks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestAutoPassthrough: a Gateway server with tls.mode AUTO_PASSTHROUGH
// (Istio's east-west gateway) routes TLS by Istio's SNI
// outbound_.PORT_.SUBSET_.HOST to that service's endpoints untouched: the
// certificate a client sees through the gateway is the httpbin sidecar's
// own workload certificate, and an SNI naming no service gets no
// handshake.
func TestAutoPassthrough(t *testing.T) {
	mesh(t)
	if captureMode {
		t.Skip("explicit mode only")
	}
	requireMeshTLS(t, "httpbin-v1")
	weft.Apply(t, kit.Task("auto-passthrough/cross-network-gateway.yaml"))
	gw := net.JoinHostPort(ingressIP, "15443")
	// peer dials the gateway with sni and returns the URI SANs of the
	// certificate the far end presented (the handshake itself may then
	// fail: the sidecar wants a mesh client certificate, which the test
	// has not).
	peer := func(sni string) ([]string, error) {
		var uris []string
		cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"istio"},
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("no certificate")
				}
				c, err := x509.ParseCertificate(raw[0])
				if err != nil {
					return err
				}
				for _, u := range c.URIs {
					uris = append(uris, u.String())
				}
				return nil
			}}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", gw, cfg)
		if conn != nil {
			conn.Close()
		}
		if len(uris) > 0 {
			return uris, nil
		}
		if err == nil {
			err = errors.New("handshake without a certificate")
		}
		return nil, err
	}
	const want = "spiffe://cluster.local/ns/default/sa/httpbin"
	meshtest.Eventually(t, "httpbin's own certificate through the gateway", 15*time.Second, func() error {
		uris, err := peer("outbound_.8000_._.httpbin.default.svc.cluster.local")
		if err != nil {
			return err
		}
		for _, u := range uris {
			if u == want {
				return nil
			}
		}
		return fmt.Errorf("the far end presented %v, want %s", uris, want)
	})
	if uris, err := peer("outbound_.9999_._.nothing.default.svc.cluster.local"); err == nil {
		t.Errorf("an SNI naming no service reached a TLS server presenting %v", uris)
	}
}
