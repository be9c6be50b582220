package translate

import (
	"path/filepath"
	"testing"
)

// Sidecar ingress tls is istiod's ENABLE_TLS_ON_SIDECAR_INGRESS feature
// (off by default): without the flag the HTTPS port is passed through to
// the app as TCP, exactly as if tls were not written.
func TestSidecarIngressTLSNeedsFeature(t *testing.T) {
	snap, _, proxies := loadCase(t, filepath.Join("testdata", "sidecar-ingress-tls"))
	for _, on := range []bool{true, false} {
		snap.Features.TLSOnSidecarIngress = on
		out := Build(snap, proxies[0])
		terminated := false
		for _, l := range out.Listeners {
			for _, fc := range l.GetFilterChains() {
				if fc.GetName() == "inbound_0.0.0.0_9443" && fc.GetTransportSocket() != nil {
					terminated = true
				}
			}
		}
		if terminated != on {
			t.Errorf("feature %v: port 9443 terminates TLS = %v", on, terminated)
		}
	}
}
