package translate

import (
	"sort"

	networking "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
)

// MTLSDescription explains the mutual TLS of one workload, as `istioctl x
// describe pod` does: which PeerAuthentication decides what its sidecar
// accepts, port by port, and what clients send to each of its services
// (auto mTLS or a DestinationRule's tls). It is computed by the same code
// that builds the proxy's config.
type MTLSDescription struct {
	Workload string `json:"workload"` // name.namespace
	Identity string `json:"identity"` // the SPIFFE id its certificate carries
	// MeshTLS: the proxy holds a workload certificate; without one it
	// cannot take part in mutual TLS (PERMISSIVE is served as plaintext).
	MeshTLS  bool          `json:"meshTLS"`
	Mode     string        `json:"mode"`     // workload-level mode
	ModeFrom string        `json:"modeFrom"` // mesh, namespace, workload or default
	Policies []PolicyRef   `json:"policies"` // the PeerAuthentications that apply
	Ports    []PortMTLS    `json:"ports"`    // inbound, per workload port
	Services []ServiceMTLS `json:"services"` // what clients send, per service port
	Warnings []string      `json:"warnings,omitempty"`
	AutoMTLS bool          `json:"autoMtls"` // MeshConfig enableAutoMtls
}

// PolicyRef names one PeerAuthentication and the mode it sets.
type PolicyRef struct {
	Scope string `json:"scope"` // mesh, namespace, workload
	Name  string `json:"name"`  // namespace/name
	Mode  string `json:"mode"`  // as written: UNSET when it inherits
}

// PortMTLS is what the sidecar accepts on one workload port.
type PortMTLS struct {
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
	Mode     string `json:"mode"`   // STRICT, PERMISSIVE, DISABLE
	Reason   string `json:"reason"` // which policy decided
	Accepts  string `json:"accepts"`
}

// ServiceMTLS is what a client in the workload's namespace sends to one
// port of one of its services.
type ServiceMTLS struct {
	Host            string `json:"host"`
	Port            uint32 `json:"port"`
	TargetPort      uint32 `json:"targetPort"`
	ClientTLS       string `json:"clientTls"` // ISTIO_MUTUAL, DISABLE, SIMPLE, MUTUAL
	Reason          string `json:"reason"`
	DestinationRule string `json:"destinationRule,omitempty"` // namespace/name(s)
}

// DescribeMTLS explains the mutual TLS of p's workload in snap.
func DescribeMTLS(snap *model.Snapshot, p *model.Proxy) *MTLSDescription {
	b := newBuilder(snap, p)
	pol := b.peerPolicy()
	d := &MTLSDescription{
		Workload: p.Meta.Name + "." + p.Meta.Namespace,
		Identity: "spiffe://" + b.trustDomain() + "/ns/" + p.Meta.Namespace + "/sa/" + p.Meta.ServiceAccount,
		MeshTLS:  p.Meta.MeshTLS,
		Mode:     pol.Mode.String(),
		ModeFrom: pol.ModeFrom,
		AutoMTLS: b.mesh.GetEnableAutoMtls() == nil || b.mesh.GetEnableAutoMtls().GetValue(),
	}
	ref := func(scope string, pa *securityv1.PeerAuthentication) {
		if pa != nil {
			d.Policies = append(d.Policies, PolicyRef{Scope: scope, Name: pa.Namespace + "/" + pa.Name, Mode: pa.Spec.GetMtls().GetMode().String()})
		}
	}
	ref("mesh", pol.Mesh)
	ref("namespace", pol.Namespace)
	ref("workload", pol.Workload)
	modeReason := "no PeerAuthentication sets a mode: Istio's default"
	for _, r := range d.Policies {
		if r.Scope == pol.ModeFrom {
			modeReason = r.Scope + " policy " + r.Name
		}
	}
	for _, ip := range b.inboundPorts() {
		pm := PortMTLS{Port: ip.port, Protocol: protocolName(ip.proto), Mode: pol.PortMode(ip.port).String(), Reason: modeReason}
		if _, ok := pol.PerPort[ip.port]; ok {
			pm.Reason = "portLevelMtls of workload policy " + pol.Workload.Namespace + "/" + pol.Workload.Name
		}
		switch b.inboundMode(ip.port) {
		case MTLSStrict:
			pm.Accepts = "mutual TLS only"
			if !p.Meta.MeshTLS {
				pm.Accepts = "nothing: STRICT needs a workload certificate this proxy does not hold"
				d.Warnings = append(d.Warnings, "port "+itoa(ip.port)+" is STRICT but the proxy holds no workload certificate: it refuses every connection")
			}
		case MTLSPermissive:
			pm.Accepts = "mutual TLS and plaintext"
		default:
			pm.Accepts = "plaintext only"
			if pol.PortMode(ip.port) == MTLSPermissive {
				pm.Accepts = "plaintext only (PERMISSIVE, but the proxy holds no workload certificate)"
			}
		}
		d.Ports = append(d.Ports, pm)
	}
	for _, svc := range p.Services {
		if svc == nil {
			continue
		}
		for _, port := range svc.Ports {
			if port == nil {
				continue
			}
			d.Services = append(d.Services, b.describeClient(svc, port, pol, d))
		}
	}
	sort.Slice(d.Services, func(i, j int) bool {
		if d.Services[i].Host != d.Services[j].Host {
			return d.Services[i].Host < d.Services[j].Host
		}
		return d.Services[i].Port < d.Services[j].Port
	})
	return d
}

// describeClient says what a client in the workload's namespace sends to
// one service port, and warns when the server would refuse it.
func (b *builder) describeClient(svc *model.Service, port *model.Port, pol PeerPolicy, d *MTLSDescription) ServiceMTLS {
	target := port.TargetPort
	if target == 0 {
		target = port.Number
	}
	for _, ep := range svc.Endpoints {
		if ep != nil && ep.Address == b.p.Meta.IP && ep.ServicePort == port.Number {
			target = ep.Port
		}
	}
	s := ServiceMTLS{Host: svc.Hostname, Port: port.Number, TargetPort: target}
	dr := b.destinationRule(svc.Hostname, svc.Namespace)
	tls := effectivePolicy(dr.GetTrafficPolicy(), nil, port.Number).tls
	serverMode := pol.PortMode(target)
	switch {
	case tls != nil:
		s.ClientTLS = tls.GetMode().String()
		s.DestinationRule = b.destinationRuleName(svc, dr)
		s.Reason = "DestinationRule tls overrides auto mTLS"
	case svc.MeshExternal:
		s.ClientTLS = networking.ClientTLSSettings_DISABLE.String()
		s.Reason = "MESH_EXTERNAL service: no mutual TLS"
	case !d.AutoMTLS:
		s.ClientTLS = networking.ClientTLSSettings_DISABLE.String()
		s.Reason = "enableAutoMtls is false and no DestinationRule sets tls"
	case serverMode == MTLSDisable:
		s.ClientTLS = networking.ClientTLSSettings_DISABLE.String()
		s.Reason = "auto mTLS: the endpoint's PeerAuthentication disables mutual TLS (tlsMode disabled)"
	default:
		s.ClientTLS = networking.ClientTLSSettings_ISTIO_MUTUAL.String()
		s.Reason = "auto mTLS: the endpoint runs a sidecar (tlsMode istio)"
	}
	plain := s.ClientTLS != networking.ClientTLSSettings_ISTIO_MUTUAL.String()
	switch {
	case plain && serverMode == MTLSStrict:
		d.Warnings = append(d.Warnings, svc.Hostname+":"+itoa(port.Number)+": clients send "+s.ClientTLS+" but the workload is STRICT: requests fail ("+s.Reason+")")
	case !plain && serverMode == MTLSDisable:
		d.Warnings = append(d.Warnings, svc.Hostname+":"+itoa(port.Number)+": clients send ISTIO_MUTUAL but the workload's port disables mutual TLS: requests fail")
	}
	return s
}

// destinationRuleName names the rule(s) merged into dr.
func (b *builder) destinationRuleName(svc *model.Service, dr *networking.DestinationRule) string {
	for _, m := range b.destinationRules().rulesFor(svc.Hostname, svc.Namespace, b.p.Meta.Namespace) {
		if m.spec == dr {
			out := ""
			for i, f := range m.from {
				if i > 0 {
					out += ","
				}
				out += f
			}
			return out
		}
	}
	return "?"
}

func protocolName(p protocol) string {
	switch p {
	case protoHTTP:
		return "HTTP"
	case protoHTTP2:
		return "HTTP2"
	case protoTLS:
		return "TLS"
	case protoAuto:
		return "auto-detected"
	}
	return "TCP"
}
