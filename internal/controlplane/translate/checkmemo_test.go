package translate

import (
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestNetworkFilterChecksMemoised: a Cache gives a listener's network
// filter steps once per place and config, and the same steps (route
// references, validation errors) for every listener that repeats them,
// as the uncached check does.
func TestNetworkFilterChecksMemoised(t *testing.T) {
	listener := func(ip string, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
		a, err := anypb.New(hcm)
		if err != nil {
			t.Fatal(err)
		}
		return &listenerv3.Listener{Name: "explicit_http_proxy",
			Address:      &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15080}}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}}}}}
	}
	rds := &hcmv3.HttpConnectionManager{StatPrefix: "explicit", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "missing"}}}
	invalid := &hcmv3.HttpConnectionManager{} // no stat_prefix, no routes
	c := NewCache(nil)
	for _, hcm := range []*hcmv3.HttpConnectionManager{rds, invalid} {
		var want []checkItem
		for i, ip := range []string{"198.18.0.1", "198.18.0.2", "198.18.0.2"} {
			l := listener(ip, hcm)
			plain, got := (*Cache)(nil).listenerSteps(l), c.listenerSteps(l)
			if len(plain) == 0 || !reflect.DeepEqual(got, plain) {
				t.Fatalf("listener %d (%v): cached steps %v, uncached %v", i, ip, got, plain)
			}
			if i > 0 && !reflect.DeepEqual(got, want) {
				t.Errorf("listener %d: steps %v, want the first one's %v", i, got, want)
			}
			want = got
		}
	}
	n := 0
	c.filters.Range(func(any, any) bool { n++; return true })
	if n != 2 {
		t.Errorf("%d filter checks kept, want 2 (one per config)", n)
	}
}
