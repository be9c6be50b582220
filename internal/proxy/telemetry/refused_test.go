package telemetry

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

// A connection network RBAC refused in front of tcp_proxy gets an access
// log line with Envoy's termination details, and counts in no TCP metric
// (it never reached the proxy).
func TestRefusedConnectionLogged(t *testing.T) {
	var out bytes.Buffer
	tel := New(Options{Node: meta("tcp-echo-v1", "tcp-echo", "v1"), Stdout: &out})
	cfg := &tcpv3.TcpProxy{StatPrefix: "inbound|9000||", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "inbound|9000||"},
		AccessLog: []*accesslogv3.AccessLog{fileLogFormat(t, "/dev/stdout", "%DOWNSTREAM_REMOTE_ADDRESS% %CONNECTION_TERMINATION_DETAILS% %UPSTREAM_CLUSTER%\n", nil)}}
	p, err := tcp.New(cfg, nil, tcp.Options{Observe: func(c *tcpv3.TcpProxy) (tcp.Observer, error) { return tel.TCP(c) }})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	p.Refuse(b, &downstream.Info{Remote: netip.MustParseAddrPort("10.0.0.9:4242")}, "rbac_access_denied_matched_policy[none]")
	tel.Close()
	if got, want := out.String(), "10.0.0.9:4242 rbac_access_denied_matched_policy[none] -\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	if strings.Contains(scrape(t, tel), "istio_tcp_connections_opened_total") {
		t.Error("a refused connection counted as opened")
	}
}
