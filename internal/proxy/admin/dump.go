package admin

import (
	"net/http"
	"sort"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	// Linked so /config_dump can print it: routes carry it as an Any (Istio's
	// default retry policy), but compiling only reads its name.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// ConfigDump renders resources in Envoy's /config_dump shape: one
// *ConfigDump per type with dynamic_* entries. Private keys are redacted,
// as Envoy does.
func ConfigDump(res *xdsclient.Resources, warming map[string][]string, active func(string) *listenerv3.Listener) (*adminv3.ConfigDump, error) {
	out := &adminv3.ConfigDump{}
	add := func(m proto.Message) error {
		a, err := anypb.New(m)
		if err != nil {
			return err
		}
		out.Configs = append(out.Configs, a)
		return nil
	}
	ver := func(t string) string { return res.Versions[t] }

	ld := &adminv3.ListenersConfigDump{VersionInfo: ver(xdsclient.ListenerType)}
	for _, n := range keys(res.Listeners) {
		l, err := anypb.New(res.Listeners[n])
		if err != nil {
			return nil, err
		}
		st := &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: ver(xdsclient.ListenerType), Listener: l}
		dl := &adminv3.ListenersConfigDump_DynamicListener{Name: n, ActiveState: st}
		if _, ok := warming[n]; ok {
			// Envoy shows the received version as warming and the serving
			// one (if any) as active.
			dl.WarmingState, dl.ActiveState = st, nil
			if a := active(n); a != nil {
				al, err := anypb.New(a)
				if err != nil {
					return nil, err
				}
				dl.ActiveState = &adminv3.ListenersConfigDump_DynamicListenerState{Listener: al}
			}
		}
		ld.DynamicListeners = append(ld.DynamicListeners, dl)
	}
	cd := &adminv3.ClustersConfigDump{VersionInfo: ver(xdsclient.ClusterType)}
	for _, n := range keys(res.Clusters) {
		c, err := anypb.New(res.Clusters[n])
		if err != nil {
			return nil, err
		}
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: ver(xdsclient.ClusterType), Cluster: c})
	}
	rd := &adminv3.RoutesConfigDump{}
	for _, n := range keys(res.Routes) {
		rc, err := anypb.New(res.Routes[n])
		if err != nil {
			return nil, err
		}
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: ver(xdsclient.RouteType), RouteConfig: rc})
	}
	ed := &adminv3.EndpointsConfigDump{}
	for _, n := range keys(res.Endpoints) {
		e, err := anypb.New(res.Endpoints[n])
		if err != nil {
			return nil, err
		}
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: ver(xdsclient.EndpointType), EndpointConfig: e})
	}
	sd := &adminv3.SecretsConfigDump{}
	for _, n := range keys(res.Secrets) {
		s := proto.Clone(res.Secrets[n]).(*tlsv3.Secret)
		if tc := s.GetTlsCertificate(); tc != nil && tc.GetPrivateKey() != nil {
			tc.PrivateKey = nil // "[redacted]" in Envoy
		}
		a, err := anypb.New(s)
		if err != nil {
			return nil, err
		}
		v := ver(xdsclient.SecretType)
		if lv, ok := res.LocalSecrets[n]; ok {
			v = lv // the proxy's own identity, not from xDS
		}
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{Name: n, VersionInfo: v, Secret: a})
	}
	for _, m := range []proto.Message{cd, ld, sd, rd, ed} {
		if err := add(m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (a *Admin) configDump(w http.ResponseWriter, r *http.Request) {
	d, err := ConfigDump(a.src.Resources(), a.src.Warming(), a.src.ActiveListener)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(d)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
