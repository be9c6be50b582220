package tasks

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// TestGatewayMissingSecret: of two servers on the ingress gateway's 443,
// the one whose Secret is missing (or sits in another namespace) loses only
// its own filter chain, and says why in `weft x describe` and the control
// plane's log; the other keeps serving. Creating the Secret in the
// gateway's namespace heals it without a restart.
func TestGatewayMissingSecret(t *testing.T) {
	m := mesh(t)
	if captureMode {
		t.Skip("explicit mode only")
	}
	dir := t.TempDir()
	ca := newTestCA(t, "example.com")
	hbCert, hbKey, hbSerial := ca.leaf(t, dir, "httpbin.example.com", false)
	hwCert, hwKey, hwSerial := ca.leaf(t, dir, "helloworld.example.com", false)
	createSecret(t, "httpbin-credential", hbCert, hbKey, "")
	// helloworld-credential exists, but in default, not in istio-system.
	if out, err := weft.Output(t, "", "create", "secret", "tls", "helloworld-credential", "--cert", hwCert, "--key", hwKey, "-n", "default"); err != nil {
		t.Fatalf("weft create secret tls -n default: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		weft.Output(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: helloworld-credential, namespace: default}\n", "delete", "-f", "-")
	})
	// The task's steps: the httpbin VirtualService of the single-host
	// step, then the two-server Gateway.
	weft.Apply(t, kit.Task("secure-gateways-simple/gateway.yaml"))
	weft.Apply(t, kit.Task("secure-gateways-multiple-hosts/gateway.yaml"))
	cfg := &tls.Config{RootCAs: ca.pool()}
	meshtest.Eventually(t, "httpbin.example.com serves beside the broken server", 15*time.Second, func() error {
		code, serial, err := httpsGet("httpbin.example.com", "/status/418", cfg)
		if err != nil {
			return err
		}
		if code != 418 || serial.Cmp(hbSerial) != 0 {
			return fmt.Errorf("status %d, serial %v", code, serial)
		}
		return nil
	})
	if _, _, err := httpsGet("helloworld.example.com", "/productpage", cfg); err == nil {
		t.Error("helloworld.example.com completed a handshake without a credential in istio-system")
	}
	const want = `Gateway default/mygateway server 1 (port 443, hosts helloworld.example.com): credentialName "helloworld-credential": Secret not found in namespace istio-system; it exists in default`
	meshtest.Eventually(t, "weft x describe explains the missing credential", 10*time.Second, func() error {
		out, err := weft.Output(t, "", "x", "describe", "workload", "istio-ingressgateway")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "WARNING: "+want) {
			return fmt.Errorf("describe says:\n%s", out)
		}
		return nil
	})
	logFile := filepath.Join(m.LogDir(), "control-plane.log")
	meshtest.Eventually(t, "the control plane logs it", 10*time.Second, func() error {
		b, err := os.ReadFile(logFile)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "credential unavailable") && strings.Contains(l, "helloworld-credential") && strings.Contains(l, "it exists in default") {
				return nil
			}
		}
		return fmt.Errorf("no 'credential unavailable' line for helloworld-credential in %s", logFile)
	})

	// In the gateway's own namespace the credential is served, at once.
	createSecret(t, "helloworld-credential", hwCert, hwKey, "")
	meshtest.Eventually(t, "helloworld.example.com once its Secret is in istio-system", 15*time.Second, func() error {
		code, serial, err := httpsGet("helloworld.example.com", "/productpage", cfg)
		if err != nil {
			return err
		}
		if code != 200 || serial.Cmp(hwSerial) != 0 {
			return fmt.Errorf("status %d, serial %v", code, serial)
		}
		return nil
	})
	out, err := weft.Output(t, "", "x", "describe", "workload", "istio-ingressgateway")
	if err != nil || strings.Contains(out, "helloworld-credential") {
		t.Errorf("describe still warns after the Secret was created (%v):\n%s", err, out)
	}
}
