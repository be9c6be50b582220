package registry

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// DomainSuffix is the cluster domain of Kubernetes Service hostnames.
const DomainSuffix = "cluster.local"

// exportToAnnotation is Istio's networking.istio.io/exportTo on Services.
const exportToAnnotation = "networking.istio.io/exportTo"

// svcPort pairs a model port with how its target is named (a Kubernetes
// targetPort may name a container port instead of numbering it).
type svcPort struct {
	*model.Port
	targetName string
}

func fromKubeService(ks *corev1.Service, workloads []*Workload, kube *kubeIndex) *model.Service {
	s := &model.Service{
		Hostname:  fmt.Sprintf("%s.%s.svc.%s", ks.Name, ks.Namespace, DomainSuffix),
		Name:      ks.Name,
		Namespace: ks.Namespace,
		Labels:    ks.Labels,
		ExportTo:  []string{"*"},
		Source:    fmt.Sprintf("Service %s/%s", ks.Namespace, ks.Name),
	}
	if ip := ks.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		s.Addresses = []string{ip}
	}
	if v := ks.Annotations[exportToAnnotation]; v != "" {
		s.ExportTo = splitList(v)
	}
	var ports []svcPort
	for _, p := range ks.Spec.Ports {
		if p.Protocol == corev1.ProtocolUDP || p.Protocol == corev1.ProtocolSCTP {
			continue // the mesh carries TCP only, as Istio
		}
		mp := &model.Port{Name: p.Name, Number: uint32(p.Port), Protocol: kubeProtocol(p)}
		sp := svcPort{Port: mp}
		switch {
		case p.TargetPort.Type == intstr.String:
			sp.targetName = p.TargetPort.StrVal
		case p.TargetPort.IntVal > 0:
			mp.TargetPort = uint32(p.TargetPort.IntVal)
		}
		s.Ports = append(s.Ports, mp)
		ports = append(ports, sp)
	}
	// A Service without selector has no endpoints from workloads
	// (Kubernetes semantics: they would come from manual Endpoints). A
	// proxy in a known pod adds its endpoints unhealthy, so only its
	// inbound config follows from them until the slices list the pod.
	if len(ks.Spec.Selector) > 0 {
		for _, w := range workloads {
			if w.Namespace == ks.Namespace && matches(ks.Spec.Selector, w.Labels) {
				eps := endpointsFor(w, ports)
				if kube.podProxy(w) {
					for _, e := range eps {
						e.Healthy = false
					}
				}
				s.Endpoints = append(s.Endpoints, eps...)
			}
		}
	}
	// On Kubernetes the EndpointSlices list the pods (with or without a
	// selector); selected WorkloadEntries and proxies add to them, as in
	// Istio.
	if fromSlices := kube.sliceEndpoints(ks, ports); len(fromSlices) > 0 {
		s.Endpoints = append(withoutAddresses(s.Endpoints, fromSlices), fromSlices...)
	}
	sortEndpoints(s.Endpoints)
	return s
}

// kubeProtocol follows Istio's protocol selection: appProtocol first, then
// the port name prefix; "" lets the proxy sniff.
func kubeProtocol(p corev1.ServicePort) string {
	if p.AppProtocol != nil {
		switch strings.ToLower(*p.AppProtocol) {
		case "kubernetes.io/h2c":
			return "HTTP2"
		case "kubernetes.io/ws", "kubernetes.io/wss":
			return "HTTP"
		}
		if pr := node.ProtocolFromName(*p.AppProtocol); pr != "" {
			return pr
		}
	}
	return node.ProtocolFromName(p.Name)
}

func fromServiceEntry(se *networkingv1.ServiceEntry, workloads []*Workload) []*model.Service {
	spec := &se.Spec
	res := model.ClientSideLB
	switch spec.GetResolution() {
	case networkingv1alpha3.ServiceEntry_DNS, networkingv1alpha3.ServiceEntry_DYNAMIC_DNS:
		res = model.DNSLB
	case networkingv1alpha3.ServiceEntry_DNS_ROUND_ROBIN:
		res = model.DNSRoundRobin
	case networkingv1alpha3.ServiceEntry_NONE:
		res = model.Passthrough
	}
	// MESH_EXTERNAL is the zero value, as in Istio.
	external := spec.GetLocation() == networkingv1alpha3.ServiceEntry_MESH_EXTERNAL
	var ports []svcPort
	var mports []*model.Port
	for _, p := range spec.GetPorts() {
		proto := strings.ToUpper(p.GetProtocol())
		if proto == "" {
			proto = node.ProtocolFromName(p.GetName())
		}
		mp := &model.Port{Name: p.GetName(), Number: p.GetNumber(), Protocol: proto, TargetPort: p.GetTargetPort()}
		mports = append(mports, mp)
		ports = append(ports, svcPort{Port: mp})
	}
	exportTo := spec.GetExportTo()
	if len(exportTo) == 0 {
		exportTo = []string{"*"}
	}

	// Endpoints shared by every host of the entry.
	var inline []*Workload
	for i, ep := range spec.GetEndpoints() {
		w := &Workload{
			Name:           se.Name,
			Namespace:      se.Namespace,
			ServiceAccount: ep.GetServiceAccount(),
			Labels:         ep.GetLabels(),
			Address:        ep.GetAddress(),
			Ports:          ep.GetPorts(),
			Network:        ep.GetNetwork(),
			Locality:       cmp.Or(ep.GetLocality(), node.LocalityFromLabels(ep.GetLabels())),
			Weight:         ep.GetWeight(),
			Source:         SourceWorkloadEntry,
		}
		if external {
			w.TLSMode = "disabled"
		}
		if w.Address == "" {
			w.Address = fmt.Sprintf("unaddressed-%d", i) // validation rejects this; keep Build total
		}
		inline = append(inline, w)
	}
	var selected []*Workload
	if sel := spec.GetWorkloadSelector(); sel != nil && len(inline) == 0 {
		for _, w := range workloads {
			if w.Namespace == se.Namespace && matches(sel.GetLabels(), w.Labels) {
				selected = append(selected, w)
			}
		}
	}

	var out []*model.Service
	for _, host := range spec.GetHosts() {
		s := &model.Service{
			Hostname:     host,
			Name:         se.Name,
			Namespace:    se.Namespace,
			Addresses:    append([]string(nil), spec.GetAddresses()...),
			Ports:        mports,
			Resolution:   res,
			MeshExternal: external,
			ExportTo:     exportTo,
			Labels:       se.Labels,
			Source:       fmt.Sprintf("ServiceEntry %s/%s", se.Namespace, se.Name),
		}
		for _, w := range append(inline, selected...) {
			s.Endpoints = append(s.Endpoints, endpointsFor(w, ports)...)
		}
		// DNS without endpoints resolves the host itself (Istio).
		if len(inline) == 0 && len(selected) == 0 && (res == model.DNSLB || res == model.DNSRoundRobin) && !strings.HasPrefix(host, "*") {
			for _, p := range ports {
				s.Endpoints = append(s.Endpoints, &model.Endpoint{
					Address: host, Port: cmp.Or(p.TargetPort, p.Number), ServicePort: p.Number,
					Namespace: se.Namespace, Healthy: true, TLSMode: "disabled",
				})
			}
		}
		sortEndpoints(s.Endpoints)
		out = append(out, s)
	}
	return out
}

func fromWorkloadEntry(we *networkingv1.WorkloadEntry) *Workload {
	spec := &we.Spec
	labels := map[string]string{}
	// Istio merges metadata labels with spec labels (spec wins).
	for k, v := range we.Labels {
		labels[k] = v
	}
	for k, v := range spec.GetLabels() {
		labels[k] = v
	}
	return &Workload{
		Name:           we.Name,
		Namespace:      we.Namespace,
		ServiceAccount: spec.GetServiceAccount(),
		Labels:         labels,
		Address:        spec.GetAddress(),
		Ports:          spec.GetPorts(),
		Network:        spec.GetNetwork(),
		Locality:       cmp.Or(spec.GetLocality(), node.LocalityFromLabels(labels)),
		Weight:         spec.GetWeight(),
		Source:         SourceWorkloadEntry,
	}
}

// endpointsFor gives one endpoint per service port. The port to dial is
// the workload's port for the service port name (WorkloadEntry.ports), or
// for a named targetPort, else the targetPort, else the service port.
func endpointsFor(w *Workload, ports []svcPort) []*model.Endpoint {
	out := make([]*model.Endpoint, 0, len(ports))
	for _, p := range ports {
		port, ok := w.Ports[p.Name]
		if !ok && p.targetName != "" {
			port, ok = w.Ports[p.targetName]
		}
		if !ok || port == 0 {
			port = cmp.Or(p.TargetPort, p.Number)
		}
		out = append(out, &model.Endpoint{
			Address:        w.Address,
			Port:           port,
			ServicePort:    p.Number,
			Labels:         w.Labels,
			WorkloadName:   w.Name,
			Namespace:      w.Namespace,
			ServiceAccount: w.ServiceAccount,
			Network:        w.Network,
			Locality:       w.Locality,
			Weight:         w.Weight,
			Healthy:        true,
			TLSMode:        w.tlsMode(),
		})
	}
	return out
}

func sortEndpoints(eps []*model.Endpoint) {
	slices.SortStableFunc(eps, func(a, b *model.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port),
			cmp.Compare(a.ServicePort, b.ServicePort), cmp.Compare(a.WorkloadName, b.WorkloadName))
	})
}

// matches reports whether labels carry every selector pair. An empty
// selector matches everything (Istio workloadSelector semantics).
func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ServicesFor returns the services whose endpoints include the proxy's
// workload, in snapshot order. A workload is recognised by namespace,
// address and name; when no endpoint carries the proxy's name (e.g. a VM
// behind a WorkloadEntry of another name), namespace and address suffice.
func ServicesFor(snap *model.Snapshot, meta *node.Meta) []*model.Service {
	if snap == nil || meta == nil || meta.IP == "" {
		return nil
	}
	return servicesAmong(snap.Services, meta)
}

// servicesAmong is ServicesFor over a subset of a snapshot's services in
// its order (all that have an endpoint at the proxy's address).
func servicesAmong(services []*model.Service, meta *node.Meta) []*model.Service {
	pick := func(byName bool) []*model.Service {
		var out []*model.Service
		for _, s := range services {
			for _, ep := range s.Endpoints {
				if ep.Namespace == meta.Namespace && ep.Address == meta.IP && (!byName || ep.WorkloadName == meta.Name) {
					out = append(out, s)
					break
				}
			}
		}
		return out
	}
	if out := pick(true); len(out) > 0 {
		return out
	}
	return pick(false)
}
