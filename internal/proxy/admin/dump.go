package admin

import (
	"encoding/json"
	"net/http"
	"sort"

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

// The dump is Envoy's envoy.admin.v3.ConfigDump in protojson's shape, put
// together here around each resource's own protojson: the admin/v3 types
// would link envoy.config.bootstrap.v3 and everything it names (356 KB of
// binary, 158 KB of heap registered at start-up in every proxy) for a page
// that is rarely read. TestConfigDumpIsEnvoys decodes it as adminv3.

const adminType = "type.googleapis.com/envoy.admin.v3."

type configDump struct {
	Configs []any `json:"configs"`
}

type clustersDump struct {
	Type    string          `json:"@type"`
	Version string          `json:"versionInfo,omitempty"`
	Active  []dynamicConfig `json:"dynamicActiveClusters,omitempty"`
}

type listenersDump struct {
	Type      string            `json:"@type"`
	Version   string            `json:"versionInfo,omitempty"`
	Listeners []dynamicListener `json:"dynamicListeners,omitempty"`
}

type dynamicListener struct {
	Name    string         `json:"name,omitempty"`
	Active  *listenerState `json:"activeState,omitempty"`
	Warming *listenerState `json:"warmingState,omitempty"`
}

type listenerState struct {
	Version  string          `json:"versionInfo,omitempty"`
	Listener json.RawMessage `json:"listener,omitempty"`
}

type secretsDump struct {
	Type    string          `json:"@type"`
	Secrets []dynamicSecret `json:"dynamicActiveSecrets,omitempty"`
}

type dynamicSecret struct {
	Name    string          `json:"name,omitempty"`
	Version string          `json:"versionInfo,omitempty"`
	Secret  json.RawMessage `json:"secret,omitempty"`
}

type routesDump struct {
	Type   string          `json:"@type"`
	Routes []dynamicConfig `json:"dynamicRouteConfigs,omitempty"`
}

type endpointsDump struct {
	Type      string          `json:"@type"`
	Endpoints []dynamicConfig `json:"dynamicEndpointConfigs,omitempty"`
}

// dynamicConfig is Envoy's Dynamic{Cluster,RouteConfig,EndpointConfig}:
// a version and the resource under a field name of its own.
type dynamicConfig struct {
	Version  string
	Field    string
	Resource json.RawMessage
}

func (d dynamicConfig) MarshalJSON() ([]byte, error) {
	m := map[string]any{d.Field: d.Resource}
	if d.Version != "" {
		m["versionInfo"] = d.Version
	}
	return json.Marshal(m)
}

// anyJSON is m as protojson prints it inside an Any: "@type" and its fields.
func anyJSON(m proto.Message) (json.RawMessage, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(a)
}

// ConfigDump renders resources in Envoy's /config_dump shape (JSON): one
// *ConfigDump per type with dynamic_* entries. Private keys are redacted,
// as Envoy does.
func ConfigDump(res *xdsclient.Resources, warming map[string][]string, active func(string) *listenerv3.Listener) ([]byte, error) {
	ver := func(t string) string { return res.Versions[t] }

	ld := listenersDump{Type: adminType + "ListenersConfigDump", Version: ver(xdsclient.ListenerType)}
	for _, n := range keys(res.Listeners) {
		l, err := anyJSON(res.Listeners[n])
		if err != nil {
			return nil, err
		}
		st := &listenerState{Version: ver(xdsclient.ListenerType), Listener: l}
		dl := dynamicListener{Name: n, Active: st}
		if _, ok := warming[n]; ok {
			// Envoy shows the received version as warming and the serving
			// one (if any) as active.
			dl.Warming, dl.Active = st, nil
			if a := active(n); a != nil {
				al, err := anyJSON(a)
				if err != nil {
					return nil, err
				}
				dl.Active = &listenerState{Listener: al}
			}
		}
		ld.Listeners = append(ld.Listeners, dl)
	}
	cd := clustersDump{Type: adminType + "ClustersConfigDump", Version: ver(xdsclient.ClusterType)}
	for _, n := range keys(res.Clusters) {
		c, err := anyJSON(res.Clusters[n])
		if err != nil {
			return nil, err
		}
		cd.Active = append(cd.Active, dynamicConfig{Version: ver(xdsclient.ClusterType), Field: "cluster", Resource: c})
	}
	rd := routesDump{Type: adminType + "RoutesConfigDump"}
	for _, n := range keys(res.Routes) {
		rc, err := protojson.Marshal(&anypb.Any{TypeUrl: xdsclient.RouteType, Value: res.Routes[n]})
		if err != nil {
			return nil, err
		}
		rd.Routes = append(rd.Routes, dynamicConfig{Version: ver(xdsclient.RouteType), Field: "routeConfig", Resource: rc})
	}
	ed := endpointsDump{Type: adminType + "EndpointsConfigDump"}
	for _, n := range keys(res.Endpoints) {
		e, err := protojson.Marshal(&anypb.Any{TypeUrl: xdsclient.EndpointType, Value: res.Endpoints[n]})
		if err != nil {
			return nil, err
		}
		ed.Endpoints = append(ed.Endpoints, dynamicConfig{Version: ver(xdsclient.EndpointType), Field: "endpointConfig", Resource: e})
	}
	sd := secretsDump{Type: adminType + "SecretsConfigDump"}
	for _, n := range keys(res.Secrets) {
		s := proto.Clone(res.Secrets[n]).(*tlsv3.Secret)
		if tc := s.GetTlsCertificate(); tc != nil && tc.GetPrivateKey() != nil {
			tc.PrivateKey = nil // "[redacted]" in Envoy
		}
		a, err := anyJSON(s)
		if err != nil {
			return nil, err
		}
		v := ver(xdsclient.SecretType)
		if lv, ok := res.LocalSecrets[n]; ok {
			v = lv // the proxy's own identity, not from xDS
		}
		sd.Secrets = append(sd.Secrets, dynamicSecret{Name: n, Version: v, Secret: a})
	}
	return json.MarshalIndent(configDump{Configs: []any{cd, ld, sd, rd, ed}}, "", "  ")
}

func (a *Admin) configDump(w http.ResponseWriter, r *http.Request) {
	b, err := ConfigDump(a.src.Resources(), a.src.Warming(), a.src.ActiveListener)
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
