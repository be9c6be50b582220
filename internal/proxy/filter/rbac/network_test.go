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
