package cli

import (
	"bytes"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sockAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// TestProxyConfigTables pins the tables of `weft proxy-config`: one row
// per resource (a resource of an unexpected type is skipped), columns
// aligned.
func TestProxyConfigTables(t *testing.T) {
	hcm := anyOf(t, &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "9080"}}})
	tcp := anyOf(t, &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "outbound|3306||mysql.default.svc.cluster.local"}})
	wrong := anyOf(t, &routev3.RouteConfiguration{Name: "not a cluster"})
	for _, tc := range []struct {
		name  string
		print func(*bytes.Buffer)
		want  string
	}{
		{"clusters", func(b *bytes.Buffer) {
			printClusters(b, &adminv3.ClustersConfigDump{DynamicActiveClusters: []*adminv3.ClustersConfigDump_DynamicCluster{
				{Cluster: anyOf(t, &clusterv3.Cluster{Name: "outbound|9080|v1|reviews.default.svc.cluster.local",
					ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})},
				{Cluster: wrong},
				{Cluster: anyOf(t, &clusterv3.Cluster{Name: "PassthroughCluster",
					ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}})},
			}})
		}, `SERVICE FQDN                        PORT   SUBSET   DIRECTION   TYPE
reviews.default.svc.cluster.local   9080   v1       outbound    EDS
PassthroughCluster                  -      -        -           ORIGINAL_DST
`},
		{"listeners", func(b *bytes.Buffer) {
			printListeners(b, &adminv3.ListenersConfigDump{DynamicListeners: []*adminv3.ListenersConfigDump_DynamicListener{
				{ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: anyOf(t, &listenerv3.Listener{
					Name: "0.0.0.0_9080", Address: sockAddress("0.0.0.0", 9080),
					FilterChains: []*listenerv3.FilterChain{
						{FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), ApplicationProtocols: []string{"http/1.1", "h2c"}},
							Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}},
						{Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcp}}}},
					}})}},
				{ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: wrong}},
				{ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: anyOf(t, &listenerv3.Listener{
					Name: "reviews:9080", ApiListener: &listenerv3.ApiListener{ApiListener: hcm}})}},
				{ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: anyOf(t, &listenerv3.Listener{
					Name: "empty", Address: sockAddress("127.0.0.1", 15001)})}},
			}})
		}, `NAME           ADDRESS     PORT    MATCH                         DESTINATION
0.0.0.0_9080   0.0.0.0     9080    port=9080 alpn=http/1.1,h2c   Route: 9080
0.0.0.0_9080   0.0.0.0     9080    ALL                           Cluster: outbound|3306||mysql.default.svc.cluster.local
reviews:9080   -           -       API listener (gRPC)           Route: 9080
empty          127.0.0.1   15001   -                             -
`},
		{"routes", func(b *bytes.Buffer) {
			printRoutes(b, &adminv3.RoutesConfigDump{DynamicRouteConfigs: []*adminv3.RoutesConfigDump_DynamicRouteConfig{
				{RouteConfig: anyOf(t, &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
					Name: "reviews.default.svc.cluster.local:9080", Domains: []string{"reviews", "reviews.default", "reviews.default.svc", "10.0.0.1"},
					Routes: []*routev3.Route{
						{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
							Headers: []*routev3.HeaderMatcher{{Name: "end-user"}}},
							Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|9080|v2|reviews.default.svc.cluster.local"}}}},
						{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/health"}},
							Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}},
					}}}})},
				{RouteConfig: anyOf(t, &clusterv3.Cluster{Name: "not a route"})},
			}})
		}, `NAME   VHOST NAME                               DOMAINS                           MATCH           DESTINATION
9080   reviews.default.svc.cluster.local:9080   reviews,reviews.default +2 more   /* [end-user]   outbound|9080|v2|reviews.default.svc.cluster.local
9080   reviews.default.svc.cluster.local:9080   reviews,reviews.default +2 more   /health         direct response 200
`},
		{"endpoints", func(b *bytes.Buffer) {
			printEndpoints(b, &adminv3.EndpointsConfigDump{DynamicEndpointConfigs: []*adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				{EndpointConfig: anyOf(t, &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|9080||reviews.default.svc.cluster.local",
					Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
						{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddress("10.0.0.7", 9080)}},
							HealthStatus: corev3.HealthStatus_HEALTHY},
						{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddress("10.0.0.8", 9080)}},
							LoadBalancingWeight: wrapperspb.UInt32(3)},
					}}}})},
				{EndpointConfig: wrong},
			}})
		}, `ENDPOINT        STATUS    WEIGHT   CLUSTER
10.0.0.7:9080   HEALTHY   1        outbound|9080||reviews.default.svc.cluster.local
10.0.0.8:9080   UNKNOWN   3        outbound|9080||reviews.default.svc.cluster.local
`},
		{"secrets", func(b *bytes.Buffer) {
			printSecrets(b, &adminv3.SecretsConfigDump{DynamicActiveSecrets: []*adminv3.SecretsConfigDump_DynamicSecret{
				{Name: "default", VersionInfo: "2026-12-06T08:00:00Z"}, {Name: "ROOTCA", VersionInfo: "1"}}})
		}, `RESOURCE NAME   VERSION
default         2026-12-06T08:00:00Z
ROOTCA          1
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.print(&b)
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}
