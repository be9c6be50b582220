package xds

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/controlplane/translate"
)

// Sync states shown by proxy-status, as istioctl names them.
const (
	Synced  = "SYNCED"
	Stale   = "STALE"
	NACK    = "NACK"
	NotSent = "NOT SENT"
)

// ProxyStatus is one proxy's xDS state, for proxy-status.
type ProxyStatus struct {
	ID          string                `json:"id"`
	Type        string                `json:"type"`
	Workload    string                `json:"workload"` // name.namespace
	IP          string                `json:"ip"`
	Version     string                `json:"version,omitempty"` // the proxy's build version
	Generator   string                `json:"generator,omitempty"`
	Identity    string                `json:"identity,omitempty"` // verified SPIFFE identity ("" on the plaintext dev port)
	Delta       bool                  `json:"delta"`
	Lifecycle   string                `json:"lifecycle"` // starting, ready or draining (see node.Lifecycle)
	ConnectedAt time.Time             `json:"connectedAt"`
	CheckError  string                `json:"checkError,omitempty"`
	Types       map[string]TypeStatus `json:"types"` // by CDS/LDS/EDS/RDS/SDS
}

// TypeStatus is the exchange state of one resource type.
type TypeStatus struct {
	State       string `json:"state"`
	Version     string `json:"version,omitempty"` // version the control plane wants the proxy on
	Sent        string `json:"sent,omitempty"`
	Acked       string `json:"acked,omitempty"`
	NACK        string `json:"nack,omitempty"` // the proxy's error_detail
	NACKVersion string `json:"nackVersion,omitempty"`
	NACKs       int    `json:"nacks,omitempty"`
}

// Status returns every connected proxy, sorted by id.
func (s *Server) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for _, p := range s.proxies {
		ps := ProxyStatus{
			ID:          p.id,
			Type:        string(p.meta.Type),
			Workload:    p.meta.Name + "." + p.meta.Namespace,
			IP:          p.meta.IP,
			Version:     p.meta.Version,
			Generator:   p.meta.Generator,
			Identity:    p.identity,
			Delta:       p.delta,
			Lifecycle:   lifecycleName(p.meta.Lifecycle),
			ConnectedAt: p.connectedAt,
			CheckError:  p.checkErr,
			Types:       map[string]TypeStatus{},
		}
		for _, t := range Types {
			ts := p.types[t]
			st := TypeStatus{Version: p.versions[t], State: NotSent}
			if ts != nil {
				st.Sent, st.Acked, st.NACK, st.NACKVersion, st.NACKs = ts.sent, ts.acked, ts.nack, ts.nackVersion, ts.nacks
				switch {
				case ts.nack != "":
					st.State = NACK
				case ts.sent == "":
					st.State = NotSent
				case ts.acked == st.Version:
					st.State = Synced
				default:
					st.State = Stale
				}
			}
			ps.Types[ShortType(t)] = st
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Output returns the last published translation for a proxy id.
func (s *Server) Output(id string) (*translate.Output, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxies[id]
	if p == nil || p.lists == nil {
		return nil, false
	}
	return output(p.lists), true
}

// FindProxy resolves a user's proxy name: a full node id, "name.namespace"
// or the workload name alone (as istioctl accepts pod names). Ambiguity is
// an error.
func (s *Server) FindProxy(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.proxies[name]; ok {
		return name, nil
	}
	var hits []string
	for id, p := range s.proxies {
		w := p.meta.Name + "." + p.meta.Namespace
		if w == name || p.meta.Name == name {
			hits = append(hits, id)
		}
	}
	slices.Sort(hits)
	switch len(hits) {
	case 0:
		return "", fmt.Errorf("proxy %q is not connected", name)
	case 1:
		return hits[0], nil
	}
	return "", fmt.Errorf("proxy %q is ambiguous: %v", name, hits)
}

// ConfigDump renders a proxy's published config in the shape of Envoy's
// /config_dump (ClustersConfigDump, ListenersConfigDump, RoutesConfigDump,
// EndpointsConfigDump, SecretsConfigDump with private keys redacted).
func (s *Server) ConfigDump(id string) (*adminv3.ConfigDump, error) {
	s.mu.Lock()
	p := s.proxies[id]
	if p == nil || p.lists == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("no config published for proxy %q", id)
	}
	out := output(p.lists)
	vs := map[string]string{}
	for _, t := range Types {
		vs[ShortType(t)] = p.versions[t]
	}
	s.mu.Unlock()

	var err error
	pack := func(m proto.Message) *anypb.Any {
		a, e := anypb.New(m)
		if e != nil && err == nil {
			err = e
		}
		return a
	}
	clusters := &adminv3.ClustersConfigDump{VersionInfo: vs["CDS"]}
	for _, c := range out.Clusters {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: vs["CDS"], Cluster: pack(c)})
	}
	listeners := &adminv3.ListenersConfigDump{VersionInfo: vs["LDS"]}
	for _, l := range out.Listeners {
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.GetName(), ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: vs["LDS"], Listener: pack(l)},
		})
	}
	routes := &adminv3.RoutesConfigDump{}
	for _, r := range out.Routes {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: vs["RDS"], RouteConfig: pack(r)})
	}
	endpoints := &adminv3.EndpointsConfigDump{}
	for _, e := range out.Endpoints {
		endpoints.DynamicEndpointConfigs = append(endpoints.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: vs["EDS"], EndpointConfig: pack(e)})
	}
	secrets := &adminv3.SecretsConfigDump{}
	for _, sec := range out.Secrets {
		// Never show key material; the name tells what is served.
		secrets.DynamicActiveSecrets = append(secrets.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{Name: sec.GetName(), VersionInfo: vs["SDS"]})
	}
	dump := &adminv3.ConfigDump{Configs: []*anypb.Any{pack(clusters), pack(listeners), pack(routes), pack(endpoints), pack(secrets)}}
	return dump, err
}
