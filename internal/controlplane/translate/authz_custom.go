package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

func (b *builder) customHTTPFilters(pols []*securityv1.AuthorizationPolicy) []*hcmv3.HttpFilter {
	return nil
}

func (b *builder) customNetworkFilters(pols []*securityv1.AuthorizationPolicy) []*listenerv3.Filter {
	return nil
}
