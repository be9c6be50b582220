package translate

import (
	"sort"

	securitypb "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// MTLSMode is the effective mutual TLS mode of a workload port.
type MTLSMode int

const (
	// MTLSPermissive accepts mutual TLS and plaintext (Istio's default).
	MTLSPermissive MTLSMode = iota
	// MTLSStrict accepts mutual TLS only.
	MTLSStrict
	// MTLSDisable accepts plaintext only.
	MTLSDisable
)

func (m MTLSMode) String() string {
	switch m {
	case MTLSStrict:
		return "STRICT"
	case MTLSDisable:
		return "DISABLE"
	}
	return "PERMISSIVE"
}

func modeOf(m securitypb.PeerAuthentication_MutualTLS_Mode) MTLSMode {
	switch m {
	case securitypb.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	case securitypb.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	}
	return MTLSPermissive
}

// PeerPolicy is the PeerAuthentication in effect for one workload, with
// the policies it came from (nil where none applies), so tools can say why.
type PeerPolicy struct {
	Mode    MTLSMode
	PerPort map[uint32]MTLSMode // by workload (target) port
	// ModeFrom names the scope that decided Mode: "mesh", "namespace",
	// "workload", or "default" (no policy set a mode).
	ModeFrom                  string
	Mesh, Namespace, Workload *securityv1.PeerAuthentication
}

// PortMode is the mode for one workload port: portLevelMtls wins.
func (p PeerPolicy) PortMode(port uint32) MTLSMode {
	if m, ok := p.PerPort[port]; ok {
		return m
	}
	return p.Mode
}

// EffectivePeerAuthentication composes the PeerAuthentications that apply
// to a workload (namespace, labels) as Istio does
// (pilot/pkg/security/authn ComposePeerAuthentication): at most one
// mesh-wide policy (root namespace, no selector), one namespace policy (no
// selector) and one workload policy (selector matching the labels, not in
// the root namespace); in each scope the oldest wins. The narrowest scope
// that sets a mode decides; UNSET (or no mtls) inherits from the wider
// scope; a portLevelMtls entry that is UNSET inherits the workload's mode.
// Without any policy the mode is PERMISSIVE.
func EffectivePeerAuthentication(snap *model.Snapshot, namespace string, labels map[string]string) PeerPolicy {
	return composePeerAuthentication(snap, sortedPeerAuthentications(snap), namespace, labels)
}

// sortedPeerAuthentications orders the snapshot's policies oldest first.
func sortedPeerAuthentications(snap *model.Snapshot) []*securityv1.PeerAuthentication {
	return byCreation(snap.PeerAuthentications, func(p *securityv1.PeerAuthentication) *metav1.ObjectMeta { return &p.ObjectMeta })
}

func composePeerAuthentication(snap *model.Snapshot, pas []*securityv1.PeerAuthentication, namespace string, labels map[string]string) PeerPolicy {
	root := "istio-system"
	if ns := snap.Mesh.GetRootNamespace(); ns != "" {
		root = ns
	}
	var mesh, nsPol, wl *securityv1.PeerAuthentication
	for _, pa := range pas {
		if pa == nil {
			continue
		}
		sel := pa.Spec.GetSelector().GetMatchLabels()
		switch {
		case len(sel) == 0 && pa.Namespace == root:
			if mesh == nil {
				mesh = pa
			}
		case len(sel) == 0 && pa.Namespace == namespace:
			if nsPol == nil {
				nsPol = pa
			}
		case len(sel) > 0 && pa.Namespace == namespace && pa.Namespace != root && labelsMatch(sel, labels):
			if wl == nil {
				wl = pa
			}
		}
	}
	out := PeerPolicy{Mode: MTLSPermissive, ModeFrom: "default", Mesh: mesh, Namespace: nsPol, Workload: wl}
	set := func(pa *securityv1.PeerAuthentication, scope string) {
		if pa == nil || unsetMTLS(pa.Spec.GetMtls()) {
			return
		}
		out.Mode, out.ModeFrom = modeOf(pa.Spec.GetMtls().GetMode()), scope
	}
	set(mesh, "mesh")
	set(nsPol, "namespace")
	set(wl, "workload")
	if wl != nil && len(wl.Spec.GetPortLevelMtls()) > 0 {
		out.PerPort = map[uint32]MTLSMode{}
		for port, m := range wl.Spec.GetPortLevelMtls() {
			if unsetMTLS(m) {
				out.PerPort[port] = out.Mode
			} else {
				out.PerPort[port] = modeOf(m.GetMode())
			}
		}
	}
	return out
}

func unsetMTLS(m *securitypb.PeerAuthentication_MutualTLS) bool {
	return m == nil || m.GetMode() == securitypb.PeerAuthentication_MutualTLS_UNSET
}

// peerPolicy is the effective policy for the proxy's own workload,
// computed once per build.
func (b *builder) peerPolicy() PeerPolicy {
	if b.peer == nil {
		p := EffectivePeerAuthentication(b.snap, b.p.Meta.Namespace, b.p.Meta.Labels)
		b.peer = &p
	}
	return *b.peer
}

// inboundMode is the mode the proxy's inbound side implements for a
// workload port. A proxy without a workload certificate cannot terminate
// mutual TLS: PERMISSIVE degrades to plaintext there, but STRICT stays
// STRICT (the port gets no chain: every connection is refused).
func (b *builder) inboundMode(port uint32) MTLSMode {
	m := b.peerPolicy().PortMode(port)
	if m == MTLSPermissive && !b.p.Meta.MeshTLS {
		return MTLSDisable
	}
	return m
}

// endpointTLSMode is the tlsMode an endpoint advertises to clients'
// transport_socket_matches: "istio" when it runs a sidecar, unless its
// own PeerAuthentication disables mutual TLS on that port (Istio's EDS
// mtlsChecker), so auto mTLS sends it plaintext.
func (b *builder) endpointTLSMode(ep *model.Endpoint) string {
	if ep.TLSMode != "istio" {
		return ep.TLSMode
	}
	if len(b.snap.PeerAuthentications) == 0 {
		return ep.TLSMode
	}
	if b.pas == nil {
		b.pas = sortedPeerAuthentications(b.snap) // once per build, not per endpoint
	}
	if composePeerAuthentication(b.snap, b.pas, ep.Namespace, ep.Labels).PortMode(ep.Port) == MTLSDisable {
		return "disabled"
	}
	return ep.TLSMode
}

// sortedPorts returns the keys of a per-port map in order.
func sortedPorts(m map[uint32]MTLSMode) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
