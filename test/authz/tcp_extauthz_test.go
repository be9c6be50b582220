package authz

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extauthznetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/filter/extauthz"
	"github.com/weftmesh/weft/internal/proxy/filter/rbac"
	"github.com/weftmesh/weft/internal/proxy/listener"
)

// portAuthz allows connections to destination port 9000 only.
type portAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (portAuthz) Check(_ context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	code := codes.PermissionDenied
	if r.GetAttributes().GetDestination().GetAddress().GetSocketAddress().GetPortValue() == 9000 {
		code = codes.OK
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(code)}}, nil
}

type echoConn struct{}

func (echoConn) ServeConn(c net.Conn, _ *downstream.Info) {
	defer c.Close()
	io.Copy(c, c)
}

type clusterEnv struct{ set *cluster.Set }

func (e clusterEnv) Upstream(n string) filter.Upstream {
	c := e.set.Get(n)
	if c == nil {
		return nil
	}
	return dialer{c}
}

type dialer struct{ c *cluster.Cluster }

func (d dialer) RoundTrip(*http.Request, *filter.Attempt) (*http.Response, string, error) {
	return nil, "", io.EOF
}
func (d dialer) Dial(ctx context.Context, _ *filter.Attempt) (net.Conn, string, error) {
	c, _, err := d.c.Dial(ctx, &cluster.RequestOptions{})
	return c, "", err
}

// TestTCPExternalAuthorization: a CUSTOM policy with a gRPC provider on a
// TCP port, through translation and the proxy's network filters: the
// service is asked per connection and a refusal closes it.
func TestTCPExternalAuthorization(t *testing.T) {
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, portAuthz{})
	go gs.Serve(gl)
	defer gs.Stop()
	const host = "ext-authz.foo.svc.cluster.local"
	snap := &model.Snapshot{Mesh: &meshv1alpha1.MeshConfig{RootNamespace: "istio-system", ExtensionProviders: []*meshv1alpha1.MeshConfig_ExtensionProvider{
		{Name: "grpc", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
			Service: host, Port: 9000}}}}},
		Services: []*model.Service{{Hostname: host, Name: "ext-authz", Namespace: "foo", Ports: []*model.Port{{Name: "grpc", Number: 9000, Protocol: "GRPC"}},
			Endpoints: []*model.Endpoint{{Address: "127.0.0.1", Port: uint32(gl.Addr().(*net.TCPAddr).Port), ServicePort: 9000, Healthy: true, TLSMode: "disabled"}}}},
		AuthorizationPolicies: []*securityv1AP{policy(t, "tcp-ext", `{selector: {matchLabels: {app: tcp-echo}}, action: CUSTOM, provider: {name: grpc}, rules: [{}]}`)},
	}
	p := &model.Proxy{ID: "tcp-echo", Meta: &node.Meta{Type: node.Sidecar, IP: workloadIP, Name: "tcp-echo", Namespace: "default",
		Labels: map[string]string{"app": "tcp-echo"}, Capture: true,
		Ports: []node.Port{{Name: "tcp", Port: 9000, Protocol: "TCP"}, {Name: "tcp-other", Port: 9001, Protocol: "TCP"}}}}
	out := translate.Build(snap, p)
	as := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, a := range out.Endpoints {
		as[a.GetClusterName()] = a
	}
	set, err := cluster.Build(nil, out.Clusters, as, nil, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	env := clusterEnv{set}
	chainFor := func(port uint32) listener.Handler {
		for _, l := range out.Listeners {
			for _, fc := range l.GetFilterChains() {
				if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != port {
					continue
				}
				return compileNetwork(t, fc, env)
			}
		}
		t.Fatalf("no chain for %d", port)
		return nil
	}
	try := func(h listener.Handler, port uint16) bool {
		a, b := net.Pipe()
		defer a.Close()
		info := &downstream.Info{Remote: netip.MustParseAddrPort("10.1.0.5:4000"), Local: netip.AddrPortFrom(netip.MustParseAddr(workloadIP), port)}
		go h.ServeConn(b, info)
		a.SetDeadline(time.Now().Add(10 * time.Second))
		go a.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, err := io.ReadFull(a, buf)
		return err == nil
	}
	if !try(chainFor(9000), 9000) {
		t.Error("port 9000: the service allows it")
	}
	if try(chainFor(9001), 9001) {
		t.Error("port 9001: the service denies it, the connection must close")
	}
}

// compileNetwork builds a chain's non-terminal filters (network RBAC,
// ext_authz) in front of an echo server, as the listener does.
func compileNetwork(t *testing.T, fc *listenerv3.FilterChain, env filter.Env) listener.Handler {
	var h listener.Handler = echoConn{}
	fs := fc.GetFilters()
	for i := len(fs) - 2; i >= 0; i-- {
		tc := fs[i].GetTypedConfig()
		var c listener.Chainer
		switch {
		case tc.MessageIs(&rbactcpv3.RBAC{}):
			cfg := &rbactcpv3.RBAC{}
			tc.UnmarshalTo(cfg)
			r, err := rbac.NewNetwork(cfg, rbac.Options{})
			if err != nil {
				t.Fatal(err)
			}
			c = r
		case tc.MessageIs(&extauthznetv3.ExtAuthz{}):
			cfg := &extauthznetv3.ExtAuthz{}
			tc.UnmarshalTo(cfg)
			e, err := extauthz.NewNetwork(cfg, extauthz.Options{Env: env})
			if err != nil {
				t.Fatal(err)
			}
			c = e
		default:
			t.Fatalf("unexpected filter %s", fs[i].GetName())
		}
		h = c.Chain(h)
	}
	return h
}

var _ = corev3.ApiVersion_V3
