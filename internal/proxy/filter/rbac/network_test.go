package rbac

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/listener"
)

type echo struct{}

func (echo) ServeConn(c net.Conn, _ *downstream.Info) {
	defer c.Close()
	io.Copy(c, c)
}

func TestNetwork(t *testing.T) {
	counters := &filter.Counters{}
	deny9001 := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"ns[foo]-policy[deny]-rule[0]": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9001}}},
			Principals: []*rbacv3.Principal{anyID}}}}
	f, err := NewNetwork(&rbactcpv3.RBAC{StatPrefix: "tcp.", Rules: deny9001, ShadowRules: deny9001, ShadowRulesStatPrefix: "istio_dry_run_deny_"},
		Options{Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	h := f.Chain(echo{})
	var _ listener.Handler = h
	try := func(port uint16) bool {
		a, b := net.Pipe()
		defer a.Close()
		info := &downstream.Info{Remote: netip.MustParseAddrPort("10.0.0.1:1"), Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)}
		go h.ServeConn(b, info)
		a.SetDeadline(time.Now().Add(5 * time.Second))
		go a.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, err := io.ReadFull(a, buf)
		return err == nil && string(buf) == "ping"
	}
	if !try(9000) {
		t.Error("port 9000 must pass")
	}
	if try(9001) {
		t.Error("port 9001 must be closed")
	}
	want := map[string]int64{"tcp.rbac.allowed": 1, "tcp.rbac.denied": 1,
		"tcp.rbac.istio_dry_run_deny_shadow_allowed": 1, "tcp.rbac.istio_dry_run_deny_shadow_denied": 1}
	got := map[string]int64{}
	counters.Each(func(n string, v int64) { got[n] = v })
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if _, err := NewNetwork(&rbactcpv3.RBAC{}, Options{}); err == nil {
		t.Error("stat_prefix is required")
	}
}

// refuser records what the network filter refused.
type refuser struct {
	echo
	details chan string
}

func (r refuser) Refuse(c net.Conn, _ *downstream.Info, details string) {
	c.Close()
	r.details <- details
}

// A denied connection is handed to a next filter that logs refusals
// (tcp_proxy's access log) with Envoy's termination details.
func TestNetworkDenialReachesAccessLog(t *testing.T) {
	allow9000 := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"ns[foo]-policy[allow]-rule[0]": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9000}}},
			Principals: []*rbacv3.Principal{anyID}}}}
	deny9001 := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"ns[foo]-policy[deny]-rule[0]": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9001}}},
			Principals: []*rbacv3.Principal{anyID}}}}
	for _, tc := range []struct {
		rules *rbacv3.RBAC
		port  uint16
		want  string
	}{
		{allow9000, 9001, "rbac_access_denied_matched_policy[none]"},
		{deny9001, 9001, "rbac_access_denied_matched_policy[ns[foo]-policy[deny]-rule[0]]"},
	} {
		f, err := NewNetwork(&rbactcpv3.RBAC{StatPrefix: "tcp.", Rules: tc.rules}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := refuser{details: make(chan string, 1)}
		a, b := net.Pipe()
		info := &downstream.Info{Remote: netip.MustParseAddrPort("10.0.0.1:1"), Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), tc.port)}
		f.Chain(r).ServeConn(b, info)
		a.Close()
		select {
		case got := <-r.details:
			if got != tc.want {
				t.Errorf("details %q, want %q", got, tc.want)
			}
		default:
			t.Errorf("port %d: denial not handed to the next filter", tc.port)
		}
	}
}
