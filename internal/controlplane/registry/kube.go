package registry

import (
	"cmp"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// Labels Istio reads on Namespaces and Pods.
const (
	tlsModeLabel = "security.istio.io/tlsMode"
	networkLabel = "topology.istio.io/network"
)

// kubeIndex holds what the Kubernetes source adds: EndpointSlices by
// owning Service ("ns/name"), Pods by "ns/name", Namespace and Node labels.
// It is empty for the directory source, where selectors pick workloads.
type kubeIndex struct {
	slices     map[string][]*discoveryv1.EndpointSlice
	pods       map[string]*corev1.Pod
	podIPs     map[string]bool // "ns/ip", built on first use
	namespaces map[string]map[string]string
	nodes      map[string]map[string]string
	// kube: the Kubernetes source is in use (it alone gives Pods,
	// EndpointSlices and Nodes; a cluster always has some).
	kube bool
}

// podProxy reports whether w is a proxy's own registration from a pod:
// one that said so (NODE_NAME in its metadata, as Istio's injected
// proxies send) while the Kubernetes source is in use, or one from a pod
// that Kubernetes knows (by namespace and name, or by pod IP). Such a
// pod's readiness is Kubernetes' to say, through its EndpointSlices: its
// proxy being up says nothing of its app (issue 14: a new pod's sidecar
// became an endpoint on the replica it connected to seconds before the
// app listened, and each request sent there got 503 UF). Its own word
// counts because its Pod may be gone: a sidecar killed without its drain
// announcement keeps its registration for the grace period, and once the
// Pod is deleted nothing else would tell it from a VM's.
func (ki *kubeIndex) podProxy(w *Workload) bool {
	if w.Source != SourceProxy || !ki.kube {
		return false
	}
	if w.NodeName != "" {
		return true
	}
	if _, ok := ki.pods[w.Namespace+"/"+w.Name]; ok {
		return true
	}
	if ki.podIPs == nil {
		ki.podIPs = map[string]bool{}
		for _, p := range ki.pods {
			for _, ip := range p.Status.PodIPs {
				ki.podIPs[p.Namespace+"/"+ip.IP] = true
			}
			if p.Status.PodIP != "" {
				ki.podIPs[p.Namespace+"/"+p.Status.PodIP] = true
			}
		}
	}
	return ki.podIPs[w.Namespace+"/"+w.Address]
}

func (ki *kubeIndex) add(o any) bool {
	switch o.(type) {
	case *discoveryv1.EndpointSlice, *corev1.Pod, *corev1.Node:
		ki.kube = true
	}
	switch o := o.(type) {
	case *discoveryv1.EndpointSlice:
		svc := o.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			return true
		}
		if ki.slices == nil {
			ki.slices = map[string][]*discoveryv1.EndpointSlice{}
		}
		ki.slices[o.Namespace+"/"+svc] = append(ki.slices[o.Namespace+"/"+svc], o)
	case *corev1.Pod:
		if ki.pods == nil {
			ki.pods = map[string]*corev1.Pod{}
		}
		ki.pods[o.Namespace+"/"+o.Name] = o
	case *corev1.Node:
		if ki.nodes == nil {
			ki.nodes = map[string]map[string]string{}
		}
		ki.nodes[o.Name] = o.Labels
	case *corev1.Namespace:
		if ki.namespaces == nil {
			ki.namespaces = map[string]map[string]string{}
		}
		ki.namespaces[o.Name] = o.Labels
	default:
		return false
	}
	return true
}

// sliceEndpoints are a Service's endpoints from its EndpointSlices, as
// Kubernetes' EndpointSlice controller computed them (readiness, named
// target ports). A ready endpoint is healthy; one not ready (a pod still
// starting, or terminating but serving) is unhealthy: EDS leaves it out,
// but its proxy still gets the service's inbound config; a terminating
// one that is not serving is left out. Pod labels, service account and
// the tlsMode label come from the endpoint's targetRef Pod.
func (ki *kubeIndex) sliceEndpoints(ks *corev1.Service, ports []svcPort) []*model.Endpoint {
	var out []*model.Endpoint
	for _, sl := range ki.slices[ks.Namespace+"/"+ks.Name] {
		if sl.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range sl.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			if !ready && terminating && ep.Conditions.Serving != nil && !*ep.Conditions.Serving {
				continue
			}
			e := model.Endpoint{
				Address:   ep.Addresses[0],
				Namespace: ks.Namespace,
				Healthy:   ready,
				TLSMode:   "disabled",
				Network:   ki.namespaces[ks.Namespace][networkLabel],
			}
			if ep.Zone != nil {
				e.Locality = "/" + *ep.Zone // region unknown without the Node
			}
			if ep.NodeName != nil {
				e.Locality = cmp.Or(nodeLocality(ki.nodes[*ep.NodeName]), e.Locality)
			}
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
				e.WorkloadName = ref.Name
				if p := ki.pods[cmp.Or(ref.Namespace, ks.Namespace)+"/"+ref.Name]; p != nil {
					e.Labels = p.Labels
					e.ServiceAccount = cmp.Or(p.Spec.ServiceAccountName, "default")
					if m := p.Labels[tlsModeLabel]; m != "" {
						e.TLSMode = m
					}
					if n := p.Labels[networkLabel]; n != "" {
						e.Network = n
					}
					e.Locality = ki.podLocality(p, e.Locality)
				}
			}
			for _, sp := range ports {
				port, ok := slicePort(sl, sp)
				if !ok {
					continue
				}
				ce := e
				ce.Port, ce.ServicePort = port, sp.Number
				out = append(out, &ce)
			}
		}
	}
	return out
}

// podLocality is Istio's (kube controller getPodLocality): the pod's own
// topology.istio.io/locality or istio-locality label, else its Node's
// region, zone and subzone labels, else fallback (from the slice).
func (ki *kubeIndex) podLocality(p *corev1.Pod, fallback string) string {
	for _, k := range []string{node.LabelLocality, node.LabelLegacyLocality} {
		if v := p.Labels[k]; v != "" {
			return node.LocalityFromLabels(map[string]string{k: v})
		}
	}
	return cmp.Or(nodeLocality(ki.nodes[p.Spec.NodeName]), fallback)
}

// nodeLocality reads a Node's topology labels (GA, then the deprecated
// failure-domain beta ones, as Istio) as region/zone/subzone.
func nodeLocality(labels map[string]string) string {
	if labels == nil {
		return ""
	}
	r := cmp.Or(labels[corev1.LabelTopologyRegion], labels[corev1.LabelFailureDomainBetaRegion])
	z := cmp.Or(labels[corev1.LabelTopologyZone], labels[corev1.LabelFailureDomainBetaZone])
	sz := labels[node.LabelSubzone]
	if r == "" && z == "" && sz == "" {
		return ""
	}
	return r + "/" + z + "/" + sz
}

// slicePort finds the slice port serving a Service port: slices name their
// ports after the Service's.
func slicePort(sl *discoveryv1.EndpointSlice, sp svcPort) (uint32, bool) {
	for _, p := range sl.Ports {
		if p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
			continue
		}
		if ptrString(p.Name) == sp.Name {
			return uint32(*p.Port), true
		}
	}
	return 0, false
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// withoutAddresses drops endpoints whose address:port the slices already
// give, so a WorkloadEntry or a proxy that registered itself for a pod
// does not double it.
func withoutAddresses(eps, have []*model.Endpoint) []*model.Endpoint {
	type key struct {
		addr string
		port uint32
	}
	seen := map[key]bool{}
	for _, e := range have {
		seen[key{e.Address, e.ServicePort}] = true
	}
	out := eps[:0]
	for _, e := range eps {
		if !seen[key{e.Address, e.ServicePort}] {
			out = append(out, e)
		}
	}
	return out
}

// WithLocality returns meta with the locality of the proxy's own endpoint
// among svcs (ServicesFor's), when that endpoint has one: as in Istio, the
// registry (a Pod's Node, on Kubernetes) knows better than what the proxy
// announced. meta itself is not modified; it is returned as is when
// nothing changes.
func WithLocality(meta *node.Meta, svcs []*model.Service) *node.Meta {
	for _, s := range svcs {
		for _, ep := range s.Endpoints {
			if ep.Address != meta.IP || ep.Namespace != meta.Namespace || ep.Locality == "" {
				continue
			}
			if ep.WorkloadName != "" && ep.WorkloadName != meta.Name {
				continue
			}
			if ep.Locality == meta.Locality {
				return meta
			}
			m := *meta
			m.Locality = ep.Locality
			return &m
		}
	}
	return meta
}
