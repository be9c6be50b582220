package config

import "testing"

// TestValidateSidecarIstioParity: Sidecar rules brought to Istio 1.31's
// (validateSidecarOutboundTrafficPolicy in pkg/config/validation).
func TestValidateSidecarIstioParity(t *testing.T) {
	sc := func(spec string) string { return doc(net1, "Sidecar", spec) }
	for _, c := range []struct {
		name, src  string
		want, warn string
	}{
		{name: "egress proxy accepted", src: sc("  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: squid.egress.svc.cluster.local, port: {number: 3128}}}\n")},
		// ALLOW_ANY only.
		{name: "egress proxy under registry only", src: sc("  outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: squid.egress.svc.cluster.local, port: {number: 3128}}}\n"),
			want: "egressProxy must be set only with ALLOW_ANY"},
		// agent.ValidateFQDN: no wildcard host (a destination would allow it).
		{name: "egress proxy wildcard host", src: sc("  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: '*.egress.svc.cluster.local', port: {number: 3128}}}\n"),
			want: "is not a valid DNS label"},
		{name: "egress proxy without port", src: sc("  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: squid.egress.svc.cluster.local}}\n"),
			want: "egressProxy port is required"},
	} {
		t.Run(c.name, func(t *testing.T) { checkValidation(t, c.src, c.want, c.warn) })
	}
}
