package extauthz

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

type noEnv struct{}

func (noEnv) Upstream(string) filter.Upstream { return nil }

func TestNACK(t *testing.T) {
	httpSvc := &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{ServerUri: &corev3.HttpUri{
		Uri: "http://ext-authz", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "outbound|8000||ext-authz"}}}}
	for _, tc := range []struct {
		cfg  *extauthzv3.ExtAuthz
		want string
	}{
		{&extauthzv3.ExtAuthz{}, "http_service or grpc_service is required"},
		{&extauthzv3.ExtAuthz{Services: httpSvc, WithRequestBody: &extauthzv3.BufferSettings{}}, "with_request_body"},
		{&extauthzv3.ExtAuthz{Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{}}}}}, "google_grpc"},
		{&extauthzv3.ExtAuthz{Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{ServerUri: &corev3.HttpUri{Uri: "x"}}}}, "cluster: required"},
	} {
		_, err := New(tc.cfg, Options{Env: noEnv{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := New(&extauthzv3.ExtAuthz{Services: httpSvc}, Options{Env: noEnv{}}); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}
