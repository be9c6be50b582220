package admin

import (
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// The hand-assembled dump decodes as Envoy's adminv3.ConfigDump (as
// `weft proxy-config secrets` and Envoy tooling read it) and equals the
// one built from the admin/v3 types: every type, versions, a warming
// listener with its active predecessor, a local secret, a redacted key.
func TestConfigDumpIsEnvoys(t *testing.T) {
	s := newSource(t)
	res := s.res
	res.Listeners["plain"] = meshtest.Listener("plain", "127.0.0.1:81", meshtest.TCPProxyFilter("c"))
	rc, err := proto.Marshal(&routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	res.Routes["80"] = rc
	cla, err := proto.Marshal(&endpointv3.ClusterLoadAssignment{ClusterName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	res.Endpoints["c"] = cla
	res.Secrets["ROOTCA"] = &tlsv3.Secret{Name: "ROOTCA"}
	res.LocalSecrets = map[string]string{"ROOTCA": "2026-12-06T10:00:00Z"}
	for _, typ := range []string{xdsclient.ClusterType, xdsclient.RouteType, xdsclient.EndpointType, xdsclient.SecretType} {
		res.Versions[typ] = "v-" + typ[len(typ)-8:]
	}
	b, err := ConfigDump(res, s.Warming(), s.ActiveListener)
	if err != nil {
		t.Fatal(err)
	}
	got := &adminv3.ConfigDump{}
	if err := protojson.Unmarshal(b, got); err != nil {
		t.Fatalf("not an envoy.admin.v3.ConfigDump: %v\n%s", err, b)
	}
	want, err := referenceDump(res, s.Warming(), s.ActiveListener)
	if err != nil {
		t.Fatal(err)
	}
	// Compared as protojson (Any values hold bytes; JSON compares content).
	wj, err := protojson.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	gj, err := protojson.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(wj) != string(gj) {
		t.Fatalf("dump differs from adminv3's:\nwant %s\ngot  %s", wj, gj)
	}
}

// referenceDump is the dump built from the admin/v3 types, as the proxy
// did before it stopped linking them.
func referenceDump(res *xdsclient.Resources, warming map[string][]string, active func(string) *listenerv3.Listener) (*adminv3.ConfigDump, error) {
	must := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			panic(err)
		}
		return a
	}
	ver := func(t string) string { return res.Versions[t] }
	ld := &adminv3.ListenersConfigDump{VersionInfo: ver(xdsclient.ListenerType)}
	for _, n := range keys(res.Listeners) {
		st := &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: ver(xdsclient.ListenerType), Listener: must(res.Listeners[n])}
		dl := &adminv3.ListenersConfigDump_DynamicListener{Name: n, ActiveState: st}
		if _, ok := warming[n]; ok {
			dl.WarmingState, dl.ActiveState = st, nil
			if a := active(n); a != nil {
				dl.ActiveState = &adminv3.ListenersConfigDump_DynamicListenerState{Listener: must(a)}
			}
		}
		ld.DynamicListeners = append(ld.DynamicListeners, dl)
	}
	cd := &adminv3.ClustersConfigDump{VersionInfo: ver(xdsclient.ClusterType)}
	for _, n := range keys(res.Clusters) {
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: ver(xdsclient.ClusterType), Cluster: must(res.Clusters[n])})
	}
	rd := &adminv3.RoutesConfigDump{}
	for _, n := range keys(res.Routes) {
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: ver(xdsclient.RouteType), RouteConfig: &anypb.Any{TypeUrl: xdsclient.RouteType, Value: res.Routes[n]}})
	}
	ed := &adminv3.EndpointsConfigDump{}
	for _, n := range keys(res.Endpoints) {
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: ver(xdsclient.EndpointType), EndpointConfig: &anypb.Any{TypeUrl: xdsclient.EndpointType, Value: res.Endpoints[n]}})
	}
	sd := &adminv3.SecretsConfigDump{}
	for _, n := range keys(res.Secrets) {
		s := proto.Clone(res.Secrets[n]).(*tlsv3.Secret)
		if tc := s.GetTlsCertificate(); tc != nil && tc.GetPrivateKey() != nil {
			tc.PrivateKey = nil
		}
		v := ver(xdsclient.SecretType)
		if lv, ok := res.LocalSecrets[n]; ok {
			v = lv
		}
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{Name: n, VersionInfo: v, Secret: must(s)})
	}
	return &adminv3.ConfigDump{Configs: []*anypb.Any{must(cd), must(ld), must(sd), must(rd), must(ed)}}, nil
}
