package telemetry

import (
	"encoding/base64"
	"net/http"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/node"
)

// Header names of Istio's HTTP metadata exchange.
const (
	HeaderPeerMetadata   = "X-Envoy-Peer-Metadata"
	HeaderPeerMetadataID = "X-Envoy-Peer-Metadata-Id"
)

const unknown = "unknown"

// Workload is one side of a hop as the labels see it. Values are never
// empty: what is not known is "unknown" (canonical revision: "latest").
// Immutable; compared by pointer in metric keys.
type Workload struct {
	Name, Namespace, App, Version string
	CanonicalService              string
	CanonicalRevision             string
	ServiceAccount                string
	Cluster                       string
}

// unknownWorkload stands for a peer that sent no metadata.
var unknownWorkload = &Workload{Name: unknown, Namespace: unknown, App: unknown, Version: unknown,
	CanonicalService: unknown, CanonicalRevision: "latest", ServiceAccount: unknown, Cluster: unknown}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// workloadOf fills a Workload from node-style fields, applying Istio's
// label rules (canonical name/revision default to app/version).
func workloadOf(name, ns, sa, cluster string, labels map[string]string) *Workload {
	w := &Workload{Name: orUnknown(name), Namespace: orUnknown(ns), ServiceAccount: orUnknown(sa), Cluster: orUnknown(cluster)}
	app := labels["app"]
	if app == "" {
		app = labels["app.kubernetes.io/name"]
	}
	ver := labels["version"]
	if ver == "" {
		ver = labels["app.kubernetes.io/version"]
	}
	w.App, w.Version = orUnknown(app), orUnknown(ver)
	w.CanonicalService = labels["service.istio.io/canonical-name"]
	if w.CanonicalService == "" {
		w.CanonicalService = orUnknown(app)
		if app == "" && name != "" {
			w.CanonicalService = name
		}
	}
	w.CanonicalRevision = labels["service.istio.io/canonical-revision"]
	if w.CanonicalRevision == "" {
		w.CanonicalRevision = ver
	}
	if w.CanonicalRevision == "" {
		w.CanonicalRevision = "latest"
	}
	return w
}

// LocalWorkload is the proxy's own workload, from its node metadata.
func LocalWorkload(m *node.Meta) *Workload {
	if m == nil {
		return unknownWorkload
	}
	return workloadOf(m.Name, m.Namespace, m.ServiceAccount, m.ClusterID, m.Labels)
}

// encodeMetadata renders the header pair a proxy sends about itself.
func encodeMetadata(m *node.Meta) (id, md string) {
	if m == nil {
		return "", ""
	}
	f := map[string]*structpb.Value{}
	put := func(k, v string) {
		if v != "" {
			f[k] = structpb.NewStringValue(v)
		}
	}
	put("NAME", m.Name)
	put("WORKLOAD_NAME", m.Name)
	put("NAMESPACE", m.Namespace)
	put("SERVICE_ACCOUNT", m.ServiceAccount)
	put("CLUSTER_ID", m.ClusterID)
	put("INSTANCE_IPS", m.IP)
	put("ISTIO_VERSION", m.Version)
	if len(m.Labels) > 0 {
		l := map[string]*structpb.Value{}
		for k, v := range m.Labels {
			l[k] = structpb.NewStringValue(v)
		}
		f["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: l})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&structpb.Struct{Fields: f})
	if err != nil {
		return m.ID(), ""
	}
	return m.ID(), base64.StdEncoding.EncodeToString(b)
}

// decodeMetadata parses x-envoy-peer-metadata; nil when it is not a
// base64 Struct. Istio's fields: WORKLOAD_NAME (else NAME), NAMESPACE,
// SERVICE_ACCOUNT, CLUSTER_ID, LABELS.
func decodeMetadata(v string) *Workload {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil
	}
	var s structpb.Struct
	if err := proto.Unmarshal(b, &s); err != nil {
		return nil
	}
	str := func(k string) string { return s.GetFields()[k].GetStringValue() }
	name := str("WORKLOAD_NAME")
	if name == "" {
		name = str("NAME")
	}
	labels := map[string]string{}
	for k, lv := range s.GetFields()["LABELS"].GetStructValue().GetFields() {
		labels[k] = lv.GetStringValue()
	}
	if name == "" && str("NAMESPACE") == "" && len(labels) == 0 {
		return nil
	}
	return workloadOf(name, str("NAMESPACE"), str("SERVICE_ACCOUNT"), str("CLUSTER_ID"), labels)
}

// peerCache maps header values to decoded peers. Reads are lock-free
// (copy-on-write map); it stops growing at maxPeers distinct values, after
// which unseen values are decoded per request (hostile or churning peers
// cannot grow memory without bound).
type peerCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*Workload]
}

const maxPeers = 4096

func (c *peerCache) get(v string) *Workload {
	if m := c.m.Load(); m != nil {
		if w, ok := (*m)[v]; ok {
			return w
		}
	}
	w := decodeMetadata(v)
	if w == nil {
		w = unknownWorkload
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	n := 0
	if old != nil {
		n = len(*old)
	}
	if n >= maxPeers {
		return w
	}
	next := make(map[string]*Workload, n+1)
	if old != nil {
		for k, x := range *old {
			next[k] = x
		}
	}
	next[v] = w
	c.m.Store(&next)
	return w
}

// takePeer reads and removes the exchange headers from h; nil when absent.
func (c *peerCache) takePeer(h http.Header) *Workload {
	vs, ok := h[HeaderPeerMetadata]
	if !ok {
		return nil
	}
	delete(h, HeaderPeerMetadata)
	delete(h, HeaderPeerMetadataID)
	if len(vs) == 0 || vs[0] == "" {
		return nil
	}
	return c.get(vs[0])
}
