// Package node is the contract between weft-proxy and the control plane: the
// workload identity a proxy announces in its xDS Node (id and metadata), so
// the control plane can auto-register the workload and build its config.
//
// Keys follow Istio's node metadata where Istio has one (NAMESPACE, LABELS,
// SERVICE_ACCOUNT, WORKLOAD_NAME, INSTANCE_IPS, CLUSTER_ID, NETWORK,
// NODE_NAME, GENERATOR); Weft's own keys start with WEFT_. This package
// imports no control-plane or Istio API code, so the proxy can use it.
package node

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Type is the role of a proxy, the first field of its node id.
type Type string

const (
	Sidecar Type = "sidecar"
	Router  Type = "router"
)

// Port is a port the workload serves, announced for auto-registration.
type Port struct {
	Name     string // e.g. "http"
	Port     uint32 // the workload's (target) port
	Protocol string // Istio protocol name: HTTP, HTTP2, GRPC, TCP, TLS, HTTPS …
}

// Meta is what a proxy says about itself.
type Meta struct {
	Type           Type
	IP             string // the workload ("pod") IP; endpoints of its services use it
	Name           string // workload name, e.g. reviews-v1
	Namespace      string
	ServiceAccount string
	Labels         map[string]string
	Ports          []Port
	Network        string
	ClusterID      string
	// NodeName is the Kubernetes node the workload's pod runs on (Istio's
	// NODE_NAME, which its injector sets from spec.nodeName): set only by
	// a proxy in a pod. On Kubernetes such a proxy's pod is an endpoint
	// when its EndpointSlice says so, never because the proxy connected.
	NodeName  string
	Generator string // "grpc" for proxyless gRPC clients
	Version   string // proxy build version

	// Capture is true when iptables sends traffic through the proxy
	// (virtualOutbound 15001 / virtualInbound 15006). When false the proxy
	// runs in explicit mode: apps use ProxyPort as an HTTP proxy, and the
	// proxy listens for inbound traffic on IP:port for each workload port.
	Capture bool
	// AppAddress is the host the application listens on for inbound
	// traffic (capture: 127.0.0.1; explicit: a loopback IP of its own).
	AppAddress string
	// ProxyPort is the explicit-mode HTTP proxy port (absolute URIs and
	// CONNECT); 0 means no explicit proxy listener.
	ProxyPort uint32
	// MeshTLS is true when the proxy holds a workload certificate and
	// serves the SDS secrets "default" and "ROOTCA" to its own listeners
	// and clusters: the control plane then sends it Istio mutual TLS
	// (auto mTLS, PeerAuthentication). A proxy without one gets plaintext
	// config, except where a STRICT policy demands TLS (that port then
	// refuses every connection: fail closed).
	MeshTLS bool
	// Locality is "region/zone/subzone" (any part may be empty), sent as
	// the xDS Node's locality, as Envoy and Istio's agent do.
	Locality string
	// Lifecycle is where the proxy is in its life; "" means ready.
	Lifecycle Lifecycle
}

// Lifecycle tells the control plane whether a proxy's workload should
// receive traffic: its endpoint is published only while the proxy is
// ready (as Kubernetes publishes a pod only while its readiness probe
// passes). A proxy starts "starting", re-sends its node "ready" once its
// first config is applied, and "draining" when it shuts down; the control
// plane takes a change only from the stream that registered the proxy.
type Lifecycle string

const (
	LifecycleStarting Lifecycle = "starting"
	LifecycleReady    Lifecycle = "ready"
	LifecycleDraining Lifecycle = "draining"
)

// Serving reports whether a proxy in l should receive traffic; proxies
// that do not say (proxyless gRPC, older proxies) are ready.
func (l Lifecycle) Serving() bool { return l == "" || l == LifecycleReady }

// LifecycleOf reads the lifecycle from a node's metadata.
func LifecycleOf(n *corev3.Node) Lifecycle {
	switch l := Lifecycle(n.GetMetadata().GetFields()[keyLifecycle].GetStringValue()); l {
	case LifecycleStarting, LifecycleDraining:
		return l
	}
	return ""
}

const (
	keyNamespace      = "NAMESPACE"
	keyLabels         = "LABELS"
	keyServiceAccount = "SERVICE_ACCOUNT"
	keyWorkloadName   = "WORKLOAD_NAME"
	keyInstanceIPs    = "INSTANCE_IPS"
	keyClusterID      = "CLUSTER_ID"
	keyNodeName       = "NODE_NAME"
	keyNetwork        = "NETWORK"
	keyGenerator      = "GENERATOR"
	keyVersion        = "ISTIO_VERSION"
	keyPorts          = "WEFT_PORTS"
	keyCapture        = "WEFT_CAPTURE"
	keyAppAddress     = "WEFT_APP_ADDRESS"
	keyProxyPort      = "WEFT_PROXY_PORT"
	keyMeshTLS        = "WEFT_MESH_TLS"
	keyLifecycle      = "WEFT_LIFECYCLE"
)

// ID is the Istio-style node id: TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local.
func (m *Meta) ID() string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", m.Type, m.IP, m.Name, m.Namespace, m.Namespace)
}

// Node builds the xDS Node a proxy sends.
func (m *Meta) Node() *corev3.Node {
	return &corev3.Node{
		Id:            m.ID(),
		Cluster:       m.Name + "." + m.Namespace,
		Metadata:      m.Struct(),
		UserAgentName: "weft-proxy",
		Locality:      ParseLocality(m.Locality),
	}
}

// ParseLocality turns "region/zone/subzone" into an xDS Locality (nil when
// empty).
func ParseLocality(s string) *corev3.Locality {
	if s == "" {
		return nil
	}
	parts := strings.SplitN(s, "/", 3)
	l := &corev3.Locality{Region: parts[0]}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}

// FormatLocality is the "region/zone/subzone" form of l, trailing empty
// parts dropped ("" for none).
func FormatLocality(l *corev3.Locality) string {
	s := l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
	return strings.TrimRight(s, "/")
}

// Well-known locality labels (Istio's istio.io/api/label and Kubernetes'
// topology labels; Istio reads the region and zone from the node, a
// standalone workload carries them itself).
const (
	LabelLocality       = "topology.istio.io/locality"
	LabelLegacyLocality = "istio-locality"
	LabelRegion         = "topology.kubernetes.io/region"
	LabelZone           = "topology.kubernetes.io/zone"
	LabelSubzone        = "topology.istio.io/subzone"
)

// LocalityFromLabels derives a locality from workload labels as Istio
// does: topology.istio.io/locality, then the older istio-locality (both
// with "." standing for "/", as label values cannot hold "/"), then the
// region, zone and subzone topology labels. "" when none is set.
func LocalityFromLabels(labels map[string]string) string {
	for _, k := range []string{LabelLocality, LabelLegacyLocality} {
		if v := labels[k]; v != "" {
			if strings.Contains(v, "/") {
				return v
			}
			return strings.ReplaceAll(v, ".", "/")
		}
	}
	r, z, sz := labels[LabelRegion], labels[LabelZone], labels[LabelSubzone]
	if r == "" && z == "" && sz == "" {
		return ""
	}
	return r + "/" + z + "/" + sz
}

// ValidateLocality checks "region/zone/subzone": at most three parts, a
// zone only under a region, a subzone only under a zone.
func ValidateLocality(s string) error {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, "/")
	if len(parts) > 3 {
		return fmt.Errorf("locality %q: want region/zone/subzone", s)
	}
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" && parts[i-1] == "" {
			return fmt.Errorf("locality %q: a zone needs a region and a subzone a zone", s)
		}
	}
	return nil
}

// Struct encodes the metadata with string values, as Istio does.
func (m *Meta) Struct() *structpb.Struct {
	f := map[string]*structpb.Value{
		keyNamespace:      structpb.NewStringValue(m.Namespace),
		keyServiceAccount: structpb.NewStringValue(m.ServiceAccount),
		keyWorkloadName:   structpb.NewStringValue(m.Name),
		keyInstanceIPs:    structpb.NewStringValue(m.IP),
		keyCapture:        structpb.NewStringValue(strconv.FormatBool(m.Capture)),
	}
	put := func(k, v string) {
		if v != "" {
			f[k] = structpb.NewStringValue(v)
		}
	}
	put(keyClusterID, m.ClusterID)
	put(keyNodeName, m.NodeName)
	put(keyNetwork, m.Network)
	put(keyGenerator, m.Generator)
	put(keyVersion, m.Version)
	put(keyAppAddress, m.AppAddress)
	if m.MeshTLS {
		put(keyMeshTLS, "true")
	}
	put(keyLifecycle, string(m.Lifecycle))
	if m.ProxyPort != 0 {
		put(keyProxyPort, strconv.FormatUint(uint64(m.ProxyPort), 10))
	}
	if len(m.Labels) > 0 {
		l := map[string]*structpb.Value{}
		for k, v := range m.Labels {
			l[k] = structpb.NewStringValue(v)
		}
		f[keyLabels] = structpb.NewStructValue(&structpb.Struct{Fields: l})
	}
	if len(m.Ports) > 0 {
		put(keyPorts, FormatPorts(m.Ports))
	}
	return &structpb.Struct{Fields: f}
}

// FormatPorts renders ports as "name:port:protocol,…", sorted by port.
func FormatPorts(ps []Port) string {
	ps = append([]Port(nil), ps...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Port < ps[j].Port })
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s:%d:%s", p.Name, p.Port, p.Protocol)
	}
	return strings.Join(parts, ",")
}

// ParsePorts is the inverse of FormatPorts. "9080" alone means an HTTP port
// named http-9080; "name:9080" defaults the protocol from the name prefix.
func ParsePorts(s string) ([]Port, error) {
	var out []Port
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		var p Port
		var num string
		switch len(f) {
		case 1:
			num = f[0]
		case 2:
			p.Name, num = f[0], f[1]
		case 3:
			p.Name, num, p.Protocol = f[0], f[1], strings.ToUpper(f[2])
		default:
			return nil, fmt.Errorf("port %q: want name:port:protocol", part)
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("port %q: %q is not a port number (1-65535)", part, num)
		}
		p.Port = uint32(n)
		if p.Name == "" {
			p.Name = fmt.Sprintf("http-%d", n)
		}
		if p.Protocol == "" {
			p.Protocol = ProtocolFromName(p.Name)
		}
		out = append(out, p)
	}
	return out, nil
}

// ProtocolFromName applies Istio's port-name convention (http, http2, grpc,
// tcp, tls, https, mongo … optionally followed by -suffix). Unknown → TCP
// is not right for Istio (it sniffs), so unknown returns "" (auto-detect).
func ProtocolFromName(name string) string {
	prefix := strings.ToLower(name)
	if i := strings.IndexByte(prefix, '-'); i >= 0 {
		prefix = prefix[:i]
	}
	switch prefix {
	case "http":
		return "HTTP"
	case "http2":
		return "HTTP2"
	case "grpc", "grpc-web":
		return "GRPC"
	case "https":
		return "HTTPS"
	case "tls":
		return "TLS"
	case "tcp":
		return "TCP"
	case "mongo", "mysql", "redis":
		return strings.ToUpper(prefix)
	}
	return ""
}

// Parse reads a Node sent by weft-proxy, Envoy (Istio metadata) or a
// proxyless gRPC client. The id gives type, IP, name and namespace when the
// metadata lacks them.
func Parse(n *corev3.Node) (*Meta, error) {
	if n == nil || n.GetId() == "" {
		return nil, fmt.Errorf("node has no id")
	}
	m := &Meta{}
	parts := strings.Split(n.GetId(), "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want TYPE~IP~NAME.NAMESPACE~DOMAIN", n.GetId())
	}
	switch Type(parts[0]) {
	case Sidecar, Router:
		m.Type = Type(parts[0])
	default:
		return nil, fmt.Errorf("node id %q: unknown proxy type %q (want sidecar or router)", n.GetId(), parts[0])
	}
	m.IP = parts[1]
	if name, ns, ok := strings.Cut(parts[2], "."); ok {
		m.Name, m.Namespace = name, ns
	} else {
		m.Name = parts[2]
	}
	str := func(k string) string {
		if v, ok := n.GetMetadata().GetFields()[k]; ok {
			return v.GetStringValue()
		}
		return ""
	}
	if v := str(keyNamespace); v != "" {
		m.Namespace = v
	}
	if v := str(keyWorkloadName); v != "" {
		m.Name = v
	}
	if v := str(keyInstanceIPs); v != "" {
		m.IP, _, _ = strings.Cut(v, ",")
	}
	m.ServiceAccount = str(keyServiceAccount)
	m.ClusterID = str(keyClusterID)
	m.NodeName = str(keyNodeName)
	m.Network = str(keyNetwork)
	m.Generator = str(keyGenerator)
	m.Version = str(keyVersion)
	m.AppAddress = str(keyAppAddress)
	m.Capture = str(keyCapture) == "true"
	m.MeshTLS = str(keyMeshTLS) == "true"
	m.Lifecycle = LifecycleOf(n)
	m.Locality = FormatLocality(n.GetLocality())
	if v := str(keyProxyPort); v != "" {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("node metadata %s=%q: not a port", keyProxyPort, v)
		}
		m.ProxyPort = uint32(p)
	}
	if l := n.GetMetadata().GetFields()[keyLabels].GetStructValue(); l != nil {
		m.Labels = map[string]string{}
		for k, v := range l.GetFields() {
			m.Labels[k] = v.GetStringValue()
		}
	}
	if m.Locality == "" {
		m.Locality = LocalityFromLabels(m.Labels)
	}
	if v := str(keyPorts); v != "" {
		ps, err := ParsePorts(v)
		if err != nil {
			return nil, fmt.Errorf("node metadata %s: %w", keyPorts, err)
		}
		m.Ports = ps
	}
	if m.Namespace == "" {
		m.Namespace = "default"
	}
	if m.ServiceAccount == "" {
		m.ServiceAccount = "default"
	}
	if m.AppAddress == "" {
		m.AppAddress = "127.0.0.1"
	}
	return m, nil
}
