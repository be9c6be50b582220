// Package registry turns service definitions (Kubernetes Services,
// ServiceEntries) and workloads (WorkloadEntries, auto-registered proxies)
// into the immutable model.Snapshot that translation reads. Build is pure:
// same input, same Snapshot, so translate's golden tests can call it.
package registry

import (
	"cmp"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// Source says where a workload came from.
type Source string

const (
	SourceWorkloadEntry Source = "WorkloadEntry"
	SourceProxy         Source = "proxy" // auto-registered by a connecting proxy
)

// Workload is one instance that can serve services.
type Workload struct {
	Name           string
	Namespace      string
	ServiceAccount string
	Labels         map[string]string
	Address        string
	// Ports maps a service port name to the port this workload serves it
	// on (WorkloadEntry.ports); unnamed ports use the service targetPort.
	Ports    map[string]uint32
	Network  string
	Locality string
	Weight   uint32
	Source   Source
	// TLSMode is "istio" when a sidecar fronts the workload, else
	// "disabled". Empty means: derive it (see tlsMode).
	TLSMode string
	// NodeName is set for a proxy that said it runs in a Kubernetes pod
	// (node.Meta.NodeName): with the Kubernetes source, only the pod's
	// EndpointSlice makes it a healthy endpoint.
	NodeName string `json:",omitempty"`
}

// FromMeta is the workload a connecting proxy auto-registers.
func FromMeta(m *node.Meta) *Workload {
	w := &Workload{
		Name:           m.Name,
		Namespace:      m.Namespace,
		ServiceAccount: m.ServiceAccount,
		Labels:         m.Labels,
		Address:        m.IP,
		Network:        m.Network,
		Locality:       m.Locality,
		Source:         SourceProxy,
		TLSMode:        "istio",
		NodeName:       m.NodeName,
	}
	// A proxyless gRPC client has no sidecar to terminate Istio mTLS, and
	// gateways are not labelled for it either (Istio's gateway injection
	// template, unlike the sidecar's, sets no security.istio.io/tlsMode):
	// auto mTLS sends them plaintext; a DestinationRule ISTIO_MUTUAL
	// reaches an ISTIO_MUTUAL gateway server. The label, when set, wins.
	if m.Generator == "grpc" || m.Type == node.Router {
		w.TLSMode = "disabled"
	}
	if v := m.Labels["security.istio.io/tlsMode"]; v != "" {
		w.TLSMode = v
	}
	if len(m.Ports) > 0 {
		w.Ports = map[string]uint32{}
		for _, p := range m.Ports {
			w.Ports[p.Name] = p.Port
		}
	}
	return w
}

// tlsMode follows Istio for WorkloadEntries: the security.istio.io/tlsMode
// label wins, else a service account implies a sidecar ("istio").
func (w *Workload) tlsMode() string {
	if w.TLSMode != "" {
		return w.TLSMode
	}
	if v, ok := w.Labels["security.istio.io/tlsMode"]; ok {
		return v
	}
	if w.Source == SourceProxy || w.ServiceAccount != "" {
		return "istio"
	}
	return "disabled"
}

// Build assembles a Snapshot. Config slices are sorted by namespace then
// name, services by hostname then namespace. resources are only read.
// Errors name the resource that could not be converted.
func Build(resources []*config.Resource, workloads []*Workload) (*model.Snapshot, error) {
	snap := &model.Snapshot{Secrets: map[string]*model.Secret{}}
	var (
		ksvcs   []*corev1.Service
		mesh    *meshv1alpha1.MeshConfig
		entries []*networkingv1.WorkloadEntry
		kube    kubeIndex
	)
	for _, r := range resources {
		if kube.add(r.Object) {
			continue
		}
		switch o := r.Object.(type) {
		case *networkingv1.VirtualService:
			snap.VirtualServices = append(snap.VirtualServices, o)
		case *networkingv1.DestinationRule:
			snap.DestinationRules = append(snap.DestinationRules, o)
		case *networkingv1.Gateway:
			snap.Gateways = append(snap.Gateways, o)
		case *networkingv1.ServiceEntry:
			snap.ServiceEntries = append(snap.ServiceEntries, o)
		case *networkingv1.Sidecar:
			snap.Sidecars = append(snap.Sidecars, o)
		case *networkingv1.WorkloadEntry:
			entries = append(entries, o)
		case *securityv1.PeerAuthentication:
			snap.PeerAuthentications = append(snap.PeerAuthentications, o)
		case *securityv1.RequestAuthentication:
			snap.RequestAuthentications = append(snap.RequestAuthentications, o)
		case *securityv1.AuthorizationPolicy:
			snap.AuthorizationPolicies = append(snap.AuthorizationPolicies, o)
		case *telemetryv1.Telemetry:
			snap.Telemetries = append(snap.Telemetries, o)
		case *corev1.Service:
			ksvcs = append(ksvcs, o)
		case *corev1.Secret:
			if s := secretOf(o); s != nil {
				snap.Secrets[s.Namespace+"/"+s.Name] = s
			}
		case *config.MeshConfig:
			if mesh != nil {
				return nil, fmt.Errorf("%s: a second MeshConfig (only one is allowed)", r.Pos)
			}
			mesh = o.Spec
			if mesh == nil {
				mesh = &meshv1alpha1.MeshConfig{}
			}
		}
	}
	snap.Mesh = withMeshDefaults(mesh)
	sortByMeta(snap.VirtualServices)
	sortByMeta(snap.DestinationRules)
	sortByMeta(snap.Gateways)
	sortByMeta(snap.ServiceEntries)
	sortByMeta(snap.Sidecars)
	sortByMeta(snap.PeerAuthentications)
	sortByMeta(snap.RequestAuthentications)
	sortByMeta(snap.AuthorizationPolicies)
	sortByMeta(snap.Telemetries)
	sortByMeta(ksvcs)
	sortByMeta(entries)

	all := make([]*Workload, 0, len(entries)+len(workloads))
	for _, we := range entries {
		all = append(all, fromWorkloadEntry(we))
	}
	for _, w := range workloads {
		if w != nil {
			all = append(all, w)
		}
	}

	idx := indexWorkloads(all)
	for _, ks := range ksvcs {
		snap.Services = append(snap.Services, fromKubeService(ks, idx.candidates(ks.Namespace, ks.Spec.Selector), &kube))
	}
	for _, se := range snap.ServiceEntries {
		snap.Services = append(snap.Services, fromServiceEntry(se, idx.candidates(se.Namespace, se.Spec.GetWorkloadSelector().GetLabels()))...)
	}
	slices.SortStableFunc(snap.Services, func(a, b *model.Service) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Source, b.Source))
	})
	return snap, nil
}

// withMeshDefaults applies Istio's defaults (config.DefaultMeshConfig when
// there is no MeshConfig document; the loader merges defaults into one it
// decodes). The key fields are defaulted again one by one for
// hand-built resources: proto.Merge would lose an explicit "false".
func withMeshDefaults(in *meshv1alpha1.MeshConfig) *meshv1alpha1.MeshConfig {
	var m *meshv1alpha1.MeshConfig
	if in == nil {
		m = config.DefaultMeshConfig()
	} else {
		m = proto.Clone(in).(*meshv1alpha1.MeshConfig)
	}
	if m.OutboundTrafficPolicy == nil {
		m.OutboundTrafficPolicy = &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{
			Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY,
		}
	}
	if m.TrustDomain == "" {
		m.TrustDomain = "cluster.local"
	}
	if m.EnableAutoMtls == nil {
		m.EnableAutoMtls = wrapperspb.Bool(true)
	}
	if m.RootNamespace == "" {
		m.RootNamespace = "istio-system"
	}
	return m
}

type namespacedNamed interface {
	GetNamespace() string
	GetName() string
}

func sortByMeta[T namespacedNamed](s []T) {
	slices.SortStableFunc(s, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
}

// secretOf reads TLS material from a kubernetes.io/tls Secret, or from the
// generic cert/key/cacert form Istio also accepts for credentialName.
func secretOf(s *corev1.Secret) *model.Secret {
	get := func(keys ...string) []byte {
		for _, k := range keys {
			if v, ok := s.Data[k]; ok && len(v) > 0 {
				return v
			}
			if v, ok := s.StringData[k]; ok && v != "" {
				return []byte(v)
			}
		}
		return nil
	}
	out := &model.Secret{
		Namespace:  s.Namespace,
		Name:       s.Name,
		CertChain:  get(corev1.TLSCertKey, "cert"),
		PrivateKey: get(corev1.TLSPrivateKeyKey, "key"),
		CACert:     get("ca.crt", "cacert"),
	}
	if s.Type != corev1.SecretTypeTLS && out.CertChain == nil && out.CACert == nil {
		return nil
	}
	return out
}
