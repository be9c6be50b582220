// Package model is the control plane's in-memory view of the mesh: the
// immutable Snapshot that translation reads (config + service registry) and
// the Proxy it translates for. Producers (store, registry) build Snapshots;
// translate and xds only read them. A Snapshot is never mutated once built.
package model

import (
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/node"
)

// Snapshot is everything translation needs, immutable once published.
// Slices are sorted by namespace then name (config) or hostname (services),
// so translation output is deterministic.
type Snapshot struct {
	Version string
	Mesh    *meshv1alpha1.MeshConfig // never nil; defaults applied

	VirtualServices        []*networkingv1.VirtualService
	DestinationRules       []*networkingv1.DestinationRule
	Gateways               []*networkingv1.Gateway
	ServiceEntries         []*networkingv1.ServiceEntry
	Sidecars               []*networkingv1.Sidecar
	PeerAuthentications    []*securityv1.PeerAuthentication
	RequestAuthentications []*securityv1.RequestAuthentication
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
	Telemetries            []*telemetryv1.Telemetry

	// Services is the registry: Kubernetes Services from the config
	// directory and ServiceEntries, with their endpoints already selected.
	Services []*Service
	// JWKS holds the key sets fetched for RequestAuthentication jwksUri,
	// by URI (JSON); a URI missing here has never been fetched.
	// Translation inlines them, as istiod does.
	JWKS map[string]string

	// Features are the control plane's feature switches (istiod's
	// environment flags); the same for every snapshot of a process.
	Features Features

	// Secrets holds TLS material for gateway credentialName, by
	// "namespace/name". Translation must only hand a secret to a proxy in
	// the secret's own namespace.
	Secrets map[string]*Secret
}

// Resolution says how a service's endpoints are found (ServiceEntry
// resolution; Kubernetes Services are ClientSideLB).
type Resolution int

const (
	ClientSideLB  Resolution = iota // STATIC, or Kubernetes endpoints: EDS
	DNSLB                           // DNS: STRICT_DNS cluster
	DNSRoundRobin                   // DNS_ROUND_ROBIN: LOGICAL_DNS cluster
	Passthrough                     // NONE: ORIGINAL_DST cluster
)

// Service is one host in the registry.
type Service struct {
	Hostname  string // FQDN: reviews.default.svc.cluster.local, or edition.cnn.com
	Name      string // short name (Kubernetes Service name or ServiceEntry name)
	Namespace string
	Addresses []string // VIPs, may be empty
	Ports     []*Port
	// Resolution and MeshExternal come from ServiceEntry; Kubernetes
	// Services are ClientSideLB and internal.
	Resolution   Resolution
	MeshExternal bool
	ExportTo     []string // "*" (default), ".", or namespaces
	Labels       map[string]string
	// Endpoints are sorted by address then port; one per (workload, port).
	Endpoints []*Endpoint
	// Source names the config it came from, e.g. "Service default/reviews".
	Source string
}

// Port is a service port.
type Port struct {
	Name       string
	Number     uint32
	Protocol   string // HTTP, HTTP2, GRPC, HTTPS, TLS, TCP … ("" = sniff)
	TargetPort uint32 // 0 = same as Number
}

// Endpoint is one workload instance serving one service port.
type Endpoint struct {
	Address        string // IP or, for DNS resolution, a hostname
	Port           uint32 // the port to dial on Address
	ServicePort    uint32 // which service port it serves
	Labels         map[string]string
	WorkloadName   string
	Namespace      string
	ServiceAccount string
	Network        string
	Locality       string // region/zone/subzone
	Weight         uint32 // 0 = 1
	Healthy        bool
	// TLSMode is "istio" when the workload runs a Weft/Istio proxy (it can
	// take ISTIO_MUTUAL), "disabled" otherwise.
	TLSMode string
}

// Secret is TLS material for a gateway server's credentialName.
type Secret struct {
	Namespace, Name string
	CertChain       []byte
	PrivateKey      []byte
	CACert          []byte
}

// GetCACert is CACert, nil-safe.
func (s *Secret) GetCACert() []byte {
	if s == nil {
		return nil
	}
	return s.CACert
}

// Proxy is a connected proxy, as translation sees it.
type Proxy struct {
	Meta *node.Meta
	// ID is the node id (Meta.ID() for weft-proxy).
	ID string
	// Identity is what the proxy proved on its xDS connection (its client
	// certificate on the secure port); nil on the plaintext dev port.
	// Gateway credentials are looked up by it, never by Meta.
	Identity *meshtls.Identity
	// Services are those whose endpoints include this proxy's workload
	// (computed by the registry); inbound config is built for them.
	Services []*Service
}

// IsGRPC reports whether the proxy is a proxyless gRPC client.
func (p *Proxy) IsGRPC() bool { return p.Meta.Generator == "grpc" }

// Features are istiod's feature flags that change translation, under
// their Istio names.
type Features struct {
	// TLSOnSidecarIngress is ENABLE_TLS_ON_SIDECAR_INGRESS (Istio's
	// default: off): a Sidecar ingress listener's tls terminates TLS.
	TLSOnSidecarIngress bool
}
