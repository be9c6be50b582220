package listener

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/downstream"
)

// retiringHandler counts Retire calls; the same pointer in two configs
// stands for a handler the runtime reused.
type retiringHandler struct{ retired, idleClosed atomic.Int32 }

func (h *retiringHandler) ServeConn(c net.Conn, _ *downstream.Info) { c.Close() }
func (h *retiringHandler) Retire()                                  { h.retired.Add(1) }
func (h *retiringHandler) CloseIdle()                               { h.idleClosed.Add(1) }

// sharedDeps hands out one handler per tag, shared across compiles.
type sharedDeps map[string]*retiringHandler

func (d sharedDeps) NetworkFilter(_ string, f *listenerv3.Filter) (Handler, error) {
	tag, _ := strings.CutPrefix(f.GetName(), "tag:")
	if d[tag] == nil {
		return nil, fmt.Errorf("unknown %s", tag)
	}
	return d[tag], nil
}

func (sharedDeps) Secret(string) *tlsv3.Secret { return nil }

// An update retires the handlers it no longer uses, not the ones it reuses,
// so connections on a replaced HTTP connection manager reconnect to the new
// config (Envoy drains the filter chains an update changed).
func TestUpdateRetiresReplacedHandlers(t *testing.T) {
	deps := sharedDeps{"kept": {}, "gone": {}, "new": {}}
	m := NewManager(Options{DrainTimeout: 200 * time.Millisecond})
	defer m.Close(context.Background())
	port := freePort(t)
	mk := func(tags ...string) *Config {
		var chains []*listenerv3.FilterChain
		for i, tg := range tags {
			chains = append(chains, fc(tg, &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(9000 + i))}))
		}
		return compile(t, &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", port), FilterChains: chains}, deps)
	}
	if err := m.Update([]*Config{mk("kept", "gone")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Update([]*Config{mk("kept", "new")}); err != nil {
		t.Fatal(err)
	}
	if got := deps["gone"].retired.Load(); got != 1 {
		t.Errorf("replaced handler retired %d times, want 1", got)
	}
	if got := deps["kept"].retired.Load() + deps["new"].retired.Load(); got != 0 {
		t.Errorf("reused or new handlers retired %d times, want 0", got)
	}
	// The drain period: idle connections of the replaced handler close
	// only when DrainTimeout has passed.
	if got := deps["gone"].idleClosed.Load(); got != 0 {
		t.Errorf("idle connections closed at the update")
	}
	deadline := time.Now().Add(5 * time.Second)
	for deps["gone"].idleClosed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle connections of the replaced handler never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := deps["kept"].idleClosed.Load() + deps["new"].idleClosed.Load(); got != 0 {
		t.Errorf("idle connections of live handlers closed %d times", got)
	}
}

// StartDrain (SIGTERM) retires every handler, listeners keep serving, and
// CloseIdle ends the drain period.
func TestStartDrainThenCloseIdle(t *testing.T) {
	deps := sharedDeps{"a": {}}
	m := NewManager(Options{})
	defer m.Close(context.Background())
	cfg := compile(t, &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", freePort(t)),
		FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, deps)
	if err := m.Update([]*Config{cfg}); err != nil {
		t.Fatal(err)
	}
	m.StartDrain()
	if deps["a"].retired.Load() == 0 || deps["a"].idleClosed.Load() != 0 {
		t.Fatalf("after StartDrain: retired %d, idle closed %d", deps["a"].retired.Load(), deps["a"].idleClosed.Load())
	}
	addr, _ := m.Addr("l")
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("a draining listener stopped accepting: %v", err)
	}
	c.Close()
	m.CloseIdle()
	if deps["a"].idleClosed.Load() == 0 {
		t.Fatal("CloseIdle did not reach the handler")
	}
}

// gate is a non-terminal filter (as network RBAC) that wraps whatever
// follows it, a new wrapper on every compile.
type gate struct{ next Handler }

func (g *gate) ServeConn(c net.Conn, info *downstream.Info) { g.next.ServeConn(c, info) }
func (g *gate) Chain(next Handler) Handler                  { return &gate{next: next} }

type gatedDeps struct{ sharedDeps }

func (d gatedDeps) NetworkFilter(l string, f *listenerv3.Filter) (Handler, error) {
	if f.GetName() == "gate" {
		return &gate{}, nil
	}
	return d.sharedDeps.NetworkFilter(l, f)
}

// A filter in front of the connection manager (RBAC before hcm or
// tcp_proxy) must not hide it from retiring: the replaced terminal filter
// retires, the reused one does not, though each compile wraps it anew.
func TestUpdateRetiresBehindChainedFilters(t *testing.T) {
	deps := gatedDeps{sharedDeps{"kept": {}, "gone": {}, "new": {}}}
	m := NewManager(Options{DrainTimeout: time.Hour})
	defer m.Close(context.Background())
	port := freePort(t)
	mk := func(tags ...string) *Config {
		var chains []*listenerv3.FilterChain
		for i, tg := range tags {
			chains = append(chains, &listenerv3.FilterChain{Name: tg,
				FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(9000 + i))},
				Filters:          []*listenerv3.Filter{{Name: "gate"}, {Name: "tag:" + tg}}})
		}
		return compile(t, &listenerv3.Listener{Name: "l", Address: sockAddr("127.0.0.1", port), FilterChains: chains}, deps)
	}
	if err := m.Update([]*Config{mk("kept", "gone")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Update([]*Config{mk("kept", "new")}); err != nil {
		t.Fatal(err)
	}
	if got := deps.sharedDeps["gone"].retired.Load(); got != 1 {
		t.Errorf("replaced handler behind a chained filter retired %d times, want 1", got)
	}
	if got := deps.sharedDeps["kept"].retired.Load(); got != 0 {
		t.Errorf("reused handler behind a chained filter retired %d times, want 0", got)
	}
	m.CloseIdle()
	if deps.sharedDeps["new"].idleClosed.Load() == 0 {
		t.Error("CloseIdle did not reach the handler behind the chained filter")
	}
}
