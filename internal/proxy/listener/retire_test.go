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
type retiringHandler struct{ retired atomic.Int32 }

func (h *retiringHandler) ServeConn(c net.Conn, _ *downstream.Info) { c.Close() }
func (h *retiringHandler) Retire()                                  { h.retired.Add(1) }

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
}
